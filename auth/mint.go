package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redcast/redcast/protocol"
)

// DefaultTokenTTL is how long a token minted with a zero MintOptions.TTL
// stays valid.
const DefaultTokenTTL = time.Hour

// MintOptions describe a token to mint.
type MintOptions struct {
	// User is the user id (sub claim). Required.
	User string
	// Info is the info claim: a JSON object of at most MaxInfoSize bytes, or
	// nil for none.
	Info []byte
	// TTL is how long the token stays valid. Default DefaultTokenTTL;
	// negative is an error (every minted token expires).
	TTL time.Duration
	// Channels is the channels claim of a connection token.
	Channels []string
	// Channel, when set, makes the token a subscription token for this
	// channel instead of a connection token; Info and Channels must then be
	// empty.
	Channel string
	// Audience and Issuer set the aud and iss claims when not empty.
	Audience string
	Issuer   string
	// ID sets the jti claim when not empty: the id the backend revokes the
	// token by.
	ID string
	// IssuedAt is the iat claim, from which TTL counts. Default: now.
	IssuedAt time.Time
}

// Mint returns a token signed with HS256 and secret (at least
// MinHMACSecretSize bytes) that a Verifier with the same secret accepts.
// It is meant for development and tests: in production the application's
// backend mints tokens.
func Mint(secret []byte, o MintOptions) (string, error) {
	if len(secret) < MinHMACSecretSize {
		return "", fmt.Errorf("auth: HMAC secret of %d bytes: at least %d needed (for example `openssl rand -hex 32`)", len(secret), MinHMACSecretSize)
	}
	if err := checkUser(o.User); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if o.TTL < 0 {
		return "", errors.New("auth: negative TTL")
	}
	if o.TTL == 0 {
		o.TTL = DefaultTokenTTL
	}
	now := o.IssuedAt
	if now.IsZero() {
		now = time.Now()
	}
	c := claims{RegisteredClaims: jwt.RegisteredClaims{
		ID:        o.ID,
		Subject:   o.User,
		Issuer:    o.Issuer,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(o.TTL)),
	}}
	if o.Audience != "" {
		c.Audience = jwt.ClaimStrings{o.Audience}
	}
	if o.Channel != "" {
		if len(o.Info) > 0 || len(o.Channels) > 0 {
			return "", errors.New("auth: a subscription token (Channel) carries no Info or Channels")
		}
		if err := protocol.ValidateChannel(o.Channel); err != nil {
			return "", fmt.Errorf("auth: channel: %s", errMessage(err))
		}
		c.Channel = &o.Channel
	}
	if len(o.Info) > 0 {
		info, err := checkInfo(o.Info)
		if err != nil {
			return "", fmt.Errorf("auth: info: %w", err)
		}
		c.Info = info
	}
	for _, ch := range o.Channels {
		if err := protocol.ValidateChannel(ch); err != nil {
			return "", fmt.Errorf("auth: channels: %s", errMessage(err))
		}
	}
	c.Channels = o.Channels
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
