package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redcast/redcast/protocol"
)

// Limits on what a token may carry.
const (
	// MaxTokenSize is the longest token accepted, in bytes; longer ones are
	// refused before they are decoded.
	MaxTokenSize = 8 << 10
	// MaxInfoSize is the largest info claim accepted, in bytes (compacted).
	MaxInfoSize = 1 << 10
	// MaxUserSize is the longest user id (sub claim) accepted, in bytes.
	MaxUserSize = 255
)

// ErrNoKey is returned by NewVerifier for a Config with neither a secret nor
// a public key.
var ErrNoKey = errors.New("auth: no HMAC secret or public key configured")

// Config configures a Verifier. At least one of HMACSecret, PublicKeyFile and
// PublicKeys must be set; every other zero value means the documented
// default.
type Config struct {
	// HMACSecret verifies HS256 tokens (and HS384/HS512 when pinned in
	// Algorithms). At least MinHMACSecretSize bytes, from a random source.
	HMACSecret []byte
	// PublicKeyFile names a PEM file of public keys (see ParsePublicKeys),
	// read once by NewVerifier.
	PublicKeyFile string
	// PublicKeys are public keys given directly (*rsa.PublicKey or
	// *ecdsa.PublicKey), in addition to those of PublicKeyFile.
	PublicKeys []crypto.PublicKey
	// Algorithms pins the accepted "alg" values. Default: HS256 when
	// HMACSecret is set, plus the algorithms of each public key (RS256,
	// RS384 and RS512 for RSA; ES256, ES384 or ES512 by ECDSA curve). Every
	// pinned algorithm needs a key of its type, and every key at least one
	// pinned algorithm.
	Algorithms []string
	// Audience, when set, must be in the token's aud claim.
	Audience string
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Leeway tolerates clock skew when checking exp, nbf and iat. Default 0.
	Leeway time.Duration
	// RequireExpiry refuses tokens without an exp claim. By default a token
	// without exp never expires.
	RequireExpiry bool
}

// Enabled reports whether c configures any key, that is whether tokens can
// be verified at all.
func (c Config) Enabled() bool {
	return len(c.HMACSecret) > 0 || c.PublicKeyFile != "" || len(c.PublicKeys) > 0
}

// Verifier verifies connection and subscription tokens. It is safe for
// concurrent use.
type Verifier struct {
	secret []byte
	keys   []crypto.PublicKey
	algs   []string
	opts   []jwt.ParserOption
	leeway time.Duration
}

// Credentials are what a verified connection token says about a client.
type Credentials struct {
	// User is the user id, the token's sub claim; never empty.
	User string
	// ExpiresAt is the token's exp, or zero when the token does not expire.
	// The node should ask the client to refresh its token before then.
	ExpiresAt time.Time
	// Info is the info claim, a compact JSON object of at most MaxInfoSize
	// bytes, shown to other clients (presence, join/leave, publications);
	// nil when the token has none.
	Info json.RawMessage
	// Channels are the channels the token lets the user subscribe to
	// without a subscription token (the channels claim).
	Channels []string
	// TokenID is the token's jti claim, "" when it has none: what the
	// backend names to revoke it.
	TokenID string
	// IssuedAt is the token's iat claim, zero when it has none; a token
	// without iat counts as issued before any time its user's tokens are
	// invalidated from.
	IssuedAt time.Time
}

// hmacSizes maps each HMAC algorithm to the smallest secret it accepts.
var hmacSizes = map[string]int{"HS256": MinHMACSecretSize, "HS384": 48, "HS512": 64}

// NewVerifier checks cfg, reads its public key file and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if !cfg.Enabled() {
		return nil, ErrNoKey
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: negative leeway %v", cfg.Leeway)
	}
	v := &Verifier{secret: bytes.Clone(cfg.HMACSecret), keys: slices.Clone(cfg.PublicKeys)}
	if len(v.secret) > 0 && len(v.secret) < MinHMACSecretSize {
		return nil, fmt.Errorf("auth: HMAC secret of %d bytes: at least %d needed (for example `openssl rand -hex 32`)", len(v.secret), MinHMACSecretSize)
	}
	for _, k := range v.keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
	}
	if cfg.PublicKeyFile != "" {
		data, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: public key file: %w", err)
		}
		keys, err := ParsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("auth: public key file %s: %w", cfg.PublicKeyFile, err)
		}
		v.keys = append(v.keys, keys...)
	}
	algs, err := v.pin(cfg.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	v.algs = algs
	v.leeway = cfg.Leeway
	v.opts = []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.RequireExpiry {
		v.opts = append(v.opts, jwt.WithExpirationRequired())
	}
	return v, nil
}

// supportedAlgorithms are the algorithms a Verifier can pin.
var supportedAlgorithms = []string{"ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512"}

// pin returns the algorithms to accept, sorted: want, checked against the
// keys, or by default HS256 for a secret and each public key's algorithms.
func (v *Verifier) pin(want []string) ([]string, error) {
	var have []string // what the keys can verify
	if len(v.secret) > 0 {
		have = append(have, "HS256")
	}
	for _, k := range v.keys {
		have = append(have, keyAlgorithms(k)...)
	}
	if len(want) == 0 {
		slices.Sort(have)
		return slices.Compact(have), nil
	}
	for alg, size := range hmacSizes {
		if len(v.secret) >= size {
			have = append(have, alg)
		}
	}
	for _, alg := range want {
		switch {
		case !slices.Contains(supportedAlgorithms, alg):
			return nil, fmt.Errorf("unsupported algorithm %q (supported: %s)", alg, strings.Join(supportedAlgorithms, ", "))
		case slices.Contains(have, alg):
		case hmacSizes[alg] > 0:
			return nil, fmt.Errorf("algorithm %s needs an HMAC secret of at least %d bytes", alg, hmacSizes[alg])
		default:
			return nil, fmt.Errorf("algorithm %s is pinned but no public key verifies it (RS* need an RSA key, ES256/ES384/ES512 an ECDSA key on P-256/P-384/P-521)", alg)
		}
	}
	if len(v.secret) > 0 && !slices.ContainsFunc(want, func(a string) bool { return hmacSizes[a] > 0 }) {
		return nil, errors.New("an HMAC secret is set but no HS algorithm is pinned")
	}
	for _, k := range v.keys {
		if !slices.ContainsFunc(keyAlgorithms(k), func(a string) bool { return slices.Contains(want, a) }) {
			return nil, fmt.Errorf("a public key verifies %s but none of them is pinned", strings.Join(keyAlgorithms(k), ", "))
		}
	}
	algs := slices.Clone(want)
	slices.Sort(algs)
	return slices.Compact(algs), nil
}

// Leeway returns the clock skew tolerated on exp, nbf and iat: a token is
// accepted up to Leeway past its exp.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// Algorithms returns the pinned algorithms, sorted.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// claims are the claims of both token kinds.
type claims struct {
	jwt.RegisteredClaims
	Info     json.RawMessage `json:"info,omitempty"`
	Channels []string        `json:"channels,omitempty"`
	// Channel is set in subscription tokens only.
	Channel *string `json:"channel,omitempty"`
}

// VerifyConnect verifies a connection token and returns what it says. It
// refuses, with ErrUnauthorized, a token longer than MaxTokenSize, a
// malformed token, an algorithm that is not pinned (alg "none" included), a
// bad signature, a token not yet valid (nbf or iat in the future beyond the
// leeway), a wrong audience or issuer, a missing or oversized sub, an info
// claim that is not a JSON object of at most MaxInfoSize bytes, an invalid
// channel name in the channels claim, and a subscription token (one with a
// channel claim). It refuses an expired token with ErrTokenExpired.
func (v *Verifier) VerifyConnect(token string) (*Credentials, error) {
	var c claims
	if reason, expired := v.parse(token, &c); reason != "" {
		if expired {
			return nil, ErrTokenExpired.WithMessage("token expired")
		}
		return nil, unauthorized("%s", reason)
	}
	if c.Channel != nil {
		return nil, unauthorized("a subscription token (channel claim) cannot connect")
	}
	if err := checkUser(c.Subject); err != nil {
		return nil, unauthorized("%s", err)
	}
	creds := &Credentials{User: c.Subject, TokenID: c.ID}
	if c.ExpiresAt != nil {
		creds.ExpiresAt = c.ExpiresAt.Time
	}
	if c.IssuedAt != nil {
		creds.IssuedAt = c.IssuedAt.Time
	}
	if len(c.Info) > 0 && string(c.Info) != "null" {
		info, err := checkInfo(c.Info)
		if err != nil {
			return nil, unauthorized("info claim: %s", err)
		}
		creds.Info = info
	}
	for i, ch := range c.Channels {
		if err := protocol.ValidateChannel(ch); err != nil {
			return nil, unauthorized("channels claim, item %d: %s", i, errMessage(err))
		}
	}
	creds.Channels = c.Channels
	return creds, nil
}

// VerifyRefresh verifies a fresh connection token for a connected client
// whose credentials are current, as VerifyConnect does, and refuses with
// ErrUnauthorized a token for another user: a connection cannot change its
// user.
func (v *Verifier) VerifyRefresh(token string, current *Credentials) (*Credentials, error) {
	creds, err := v.VerifyConnect(token)
	if err != nil {
		return nil, err
	}
	if current == nil || creds.User != current.User {
		return nil, unauthorized("the token is for another user")
	}
	return creds, nil
}

// VerifySubscribe verifies a subscription token for a private channel: its
// sub must be clientUser (the connection's user; anonymous clients, with an
// empty user, cannot use subscription tokens) and its channel claim must be
// channel. Key, algorithm, time, audience and issuer rules are those of
// VerifyConnect. An expired token is refused with ErrTokenExpired, anything
// else with protocol.ErrPermissionDenied.
func (v *Verifier) VerifySubscribe(token, clientUser, channel string) error {
	if clientUser == "" {
		return denied("anonymous clients cannot use subscription tokens")
	}
	var c claims
	if reason, expired := v.parse(token, &c); reason != "" {
		if expired {
			return ErrTokenExpired.WithMessage("subscription token expired")
		}
		return denied("subscription token: %s", reason)
	}
	switch {
	case c.Channel == nil:
		return denied("subscription token: no channel claim")
	case *c.Channel != channel:
		return denied("subscription token: for another channel")
	case c.Subject != clientUser:
		return denied("subscription token: for another user")
	}
	return nil
}

// parse verifies token into c. On refusal it returns why, for the client,
// and whether the only problem is expiry.
func (v *Verifier) parse(token string, c *claims) (reason string, expired bool) {
	if token == "" {
		return "empty token", false
	}
	if len(token) > MaxTokenSize {
		return fmt.Sprintf("token longer than %d bytes", MaxTokenSize), false
	}
	t, err := jwt.NewParser(v.opts...).ParseWithClaims(token, c, v.key)
	if err == nil {
		return "", false
	}
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return "malformed token", false
	}
	if t != nil {
		if alg, _ := t.Header["alg"].(string); !slices.Contains(v.algs, alg) {
			if alg == "" {
				return "no signing algorithm (alg)", false
			}
			if len(alg) > 16 {
				return "signing algorithm not accepted", false
			}
			return fmt.Sprintf("signing algorithm %q not accepted", alg), false
		}
	}
	if errors.Is(err, jwt.ErrTokenUnverifiable) {
		if errors.Is(err, errCritical) {
			return errCritical.Error(), false
		}
		return "token cannot be verified", false
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return "bad signature", false
	}
	if problems := claimProblems(err); len(problems) > 0 {
		return strings.Join(problems, ", "), false
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		return "token expired", true
	}
	return "invalid token", false
}

var errCritical = errors.New("token has critical header parameters (crit) redcast does not understand")

// key is the jwt.Keyfunc: it hands each algorithm family only keys of its
// own type, so a token can never be verified with a key of another kind.
// The parser has already refused algorithms that are not pinned.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical // RFC 7515 section 4.1.11
	}
	var keys []jwt.VerificationKey
	switch m := t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(v.secret) > 0 {
			return v.secret, nil
		}
	case *jwt.SigningMethodRSA:
		for _, k := range v.keys {
			if rk, ok := k.(*rsa.PublicKey); ok {
				keys = append(keys, rk)
			}
		}
	case *jwt.SigningMethodECDSA:
		for _, k := range v.keys {
			if ek, ok := k.(*ecdsa.PublicKey); ok && ecdsaAlgorithm(ek) == m.Alg() {
				keys = append(keys, ek)
			}
		}
	}
	switch len(keys) {
	case 0:
		return nil, errors.New("no key for this algorithm")
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// claimProblems lists what is wrong with a token's claims other than its
// expiry, in words a client can read.
func claimProblems(err error) []string {
	var out []string
	for _, p := range []struct {
		err error
		msg string
	}{
		{jwt.ErrTokenNotValidYet, "token not valid yet (nbf)"},
		{jwt.ErrTokenUsedBeforeIssued, "token issued in the future (iat)"},
		{jwt.ErrTokenInvalidAudience, "wrong audience (aud)"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer (iss)"},
		{jwt.ErrTokenRequiredClaimMissing, "missing a required claim (exp, aud or iss)"},
		{jwt.ErrInvalidType, "claim of the wrong type"},
	} {
		if errors.Is(err, p.err) {
			out = append(out, p.msg)
		}
	}
	return out
}

func checkUser(sub string) error {
	switch {
	case sub == "":
		return errors.New("no user (sub claim)")
	case len(sub) > MaxUserSize:
		return fmt.Errorf("user (sub claim) longer than %d bytes", MaxUserSize)
	}
	return nil
}

// checkInfo returns info compacted, refusing anything but a JSON object of at
// most MaxInfoSize bytes.
func checkInfo(info []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, info); err != nil {
		return nil, errors.New("not valid JSON")
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if buf.Len() > MaxInfoSize {
		return nil, fmt.Errorf("%d bytes, at most %d allowed", buf.Len(), MaxInfoSize)
	}
	return buf.Bytes(), nil
}

// errMessage returns the message of a protocol error, or err's text.
func errMessage(err error) string {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr.Message
	}
	return err.Error()
}
