package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redcast/redcast/protocol"
)

// code returns the protocol error code of err, or 0.
func code(err error) uint32 {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr.Code
	}
	return 0
}

func TestVerifyConnectAccepts(t *testing.T) {
	rsaFile := writeFile(t, "rsa.pem", pemOf(t, &rsaKey().PublicKey))
	// Two keys in one file, as during a key rotation.
	rotated := writeFile(t, "keys.pem", pemOf(t, &otherRSAKey().PublicKey, &p256Key().PublicKey, &rsaKey().PublicKey))
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	full := jwt.MapClaims{
		"sub": "alice", "exp": exp.Unix(), "iat": time.Now().Unix(), "nbf": time.Now().Unix(),
		"info":     map[string]any{"name": "Alice", "tags": []string{"a", "b"}},
		"channels": []string{"private:alice", "dm:#alice,bob"},
		"aud":      "redcast", "iss": "backend",
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		token string
	}{
		{"HS256", Config{HMACSecret: testSecret}, sign(t, jwt.SigningMethodHS256, testSecret, full)},
		{"HS512 pinned", Config{HMACSecret: []byte(strings.Repeat("k", 64)), Algorithms: []string{"HS512"}},
			sign(t, jwt.SigningMethodHS512, []byte(strings.Repeat("k", 64)), full)},
		{"RS256 from a file", Config{PublicKeyFile: rsaFile}, sign(t, jwt.SigningMethodRS256, rsaKey(), full)},
		{"RS512 from a file", Config{PublicKeyFile: rsaFile}, sign(t, jwt.SigningMethodRS512, rsaKey(), full)},
		{"ES256", Config{PublicKeys: []crypto.PublicKey{&p256Key().PublicKey}}, sign(t, jwt.SigningMethodES256, p256Key(), full)},
		{"ES384", Config{PublicKeys: []crypto.PublicKey{&p384Key().PublicKey}}, sign(t, jwt.SigningMethodES384, p384Key(), full)},
		{"rotated keys, RS256", Config{PublicKeyFile: rotated}, sign(t, jwt.SigningMethodRS256, rsaKey(), full)},
		{"rotated keys, ES256", Config{PublicKeyFile: rotated}, sign(t, jwt.SigningMethodES256, p256Key(), full)},
		{"secret and key, HS256", Config{HMACSecret: testSecret, PublicKeyFile: rsaFile}, sign(t, jwt.SigningMethodHS256, testSecret, full)},
		{"secret and key, RS256", Config{HMACSecret: testSecret, PublicKeyFile: rsaFile}, sign(t, jwt.SigningMethodRS256, rsaKey(), full)},
		{"audience and issuer", Config{HMACSecret: testSecret, Audience: "redcast", Issuer: "backend"}, sign(t, jwt.SigningMethodHS256, testSecret, full)},
		{"audience in a list", Config{HMACSecret: testSecret, Audience: "redcast"},
			sign(t, jwt.SigningMethodHS256, testSecret, with(full, "aud", []string{"other", "redcast"}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := newVerifier(t, tc.cfg).VerifyConnect(tc.token)
			if err != nil {
				t.Fatalf("VerifyConnect: %v", err)
			}
			if creds.User != "alice" || !creds.ExpiresAt.Equal(exp) {
				t.Errorf("creds = %+v, want user alice expiring at %v", creds, exp)
			}
			if string(creds.Info) != `{"name":"Alice","tags":["a","b"]}` {
				t.Errorf("info = %s", creds.Info)
			}
			if !slices.Equal(creds.Channels, []string{"private:alice", "dm:#alice,bob"}) {
				t.Errorf("channels = %q", creds.Channels)
			}
		})
	}
}

func TestVerifyConnectOptionalClaims(t *testing.T) {
	v := newVerifier(t, Config{HMACSecret: testSecret})
	creds, err := v.VerifyConnect(sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "bob", "info": nil}))
	if err != nil {
		t.Fatal(err)
	}
	if !creds.ExpiresAt.IsZero() || creds.Info != nil || creds.Channels != nil {
		t.Errorf("creds = %+v, want no expiry, info or channels", creds)
	}
	// Within the leeway, an expired token and one from the near future pass.
	v = newVerifier(t, Config{HMACSecret: testSecret, Leeway: time.Minute})
	for _, c := range []jwt.MapClaims{
		with(claimsFor("bob"), "exp", time.Now().Add(-30*time.Second).Unix()),
		with(claimsFor("bob"), "nbf", time.Now().Add(30*time.Second).Unix(), "iat", time.Now().Add(30*time.Second).Unix()),
	} {
		if _, err := v.VerifyConnect(sign(t, jwt.SigningMethodHS256, testSecret, c)); err != nil {
			t.Errorf("within leeway: %v", err)
		}
	}
}

// TestVerifyConnectRefuses covers every refusal of a connection token.
func TestVerifyConnectRefuses(t *testing.T) {
	hs := newVerifier(t, Config{HMACSecret: testSecret})
	rs := newVerifier(t, Config{PublicKeyFile: writeFile(t, "rsa.pem", pemOf(t, &rsaKey().PublicKey))})
	es := newVerifier(t, Config{PublicKeys: []crypto.PublicKey{&p256Key().PublicKey}})
	audIss := newVerifier(t, Config{HMACSecret: testSecret, Audience: "redcast", Issuer: "backend"})
	strict := newVerifier(t, Config{HMACSecret: testSecret, RequireExpiry: true})
	rsaPEM := pemOf(t, &rsaKey().PublicKey)
	ok := claimsFor("alice")
	hsTok := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, c) }
	noneHeader := func(alg string) map[string]any { return map[string]any{"alg": alg, "typ": "JWT"} }
	tampered := func() string {
		parts := strings.Split(hsTok(ok), ".")
		parts[1] = strings.Split(hsTok(claimsFor("mallory")), ".")[1]
		return strings.Join(parts, ".")
	}
	critTok := jwt.NewWithClaims(jwt.SigningMethodHS256, ok)
	critTok.Header["crit"] = []string{"exp"}
	critical, err := critTok.SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		v     *Verifier
		token string
		code  uint32
		msg   string // part of the error message
	}{
		{"alg none unsigned", hs, raw(noneHeader("none"), ok, nil), 114, `"none" not accepted`},
		{"alg none with a signature", hs, raw(noneHeader("none"), ok, []byte("sig")), 114, "not accepted"},
		{"alg None", rs, raw(noneHeader("None"), ok, nil), 114, "not accepted"},
		{"no alg", hs, raw(map[string]any{"typ": "JWT"}, ok, []byte("x")), 114, "no signing algorithm"},
		{"unknown alg", hs, raw(noneHeader("HS257"), ok, []byte("x")), 114, "not accepted"},
		{"long alg not echoed", hs, raw(noneHeader(strings.Repeat("A", 100)), ok, []byte("x")), 114, "signing algorithm not accepted"},
		// Key confusion: an HMAC token whose secret is the RSA public key.
		{"HS256 against RS256 (key confusion)", rs, sign(t, jwt.SigningMethodHS256, rsaPEM, ok), 114, `"HS256" not accepted`},
		{"RS256 against HS256", hs, sign(t, jwt.SigningMethodRS256, rsaKey(), ok), 114, `"RS256" not accepted`},
		{"ES256 against RSA", rs, sign(t, jwt.SigningMethodES256, p256Key(), ok), 114, "not accepted"},
		{"ES384 against P-256", es, sign(t, jwt.SigningMethodES384, p384Key(), ok), 114, "not accepted"},
		{"PS256 against RSA", rs, sign(t, jwt.SigningMethodPS256, rsaKey(), ok), 114, "not accepted"},
		{"HS384 not pinned", hs, sign(t, jwt.SigningMethodHS384, testSecret, ok), 114, "not accepted"},
		{"RS256 by another key", rs, sign(t, jwt.SigningMethodRS256, otherRSAKey(), ok), 114, "bad signature"},
		{"ES256 by another key", es, sign(t, jwt.SigningMethodES256, mustEC(elliptic.P256()), ok), 114, "bad signature"},
		{"HS256 with another secret", hs, sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two byte"), ok), 114, "bad signature"},
		{"tampered claims", hs, tampered(), 114, "bad signature"},
		{"no signature", hs, strings.Join(strings.Split(hsTok(ok), ".")[:2], ".") + ".", 114, "bad signature"},
		{"expired", hs, hsTok(with(ok, "exp", time.Now().Add(-time.Minute).Unix())), 115, "token expired"},
		{"expired RS256", rs, sign(t, jwt.SigningMethodRS256, rsaKey(), with(ok, "exp", time.Now().Add(-time.Minute).Unix())), 115, "token expired"},
		{"expired and wrong audience", audIss, hsTok(with(ok, "exp", time.Now().Add(-time.Minute).Unix(), "aud", "x", "iss", "backend")), 114, "wrong audience"},
		{"nbf in the future", hs, hsTok(with(ok, "nbf", time.Now().Add(time.Hour).Unix())), 114, "not valid yet"},
		{"iat in the future", hs, hsTok(with(ok, "iat", time.Now().Add(time.Hour).Unix())), 114, "issued in the future"},
		{"wrong audience", audIss, hsTok(with(ok, "aud", "other", "iss", "backend")), 114, "wrong audience"},
		{"no audience", audIss, hsTok(with(ok, "iss", "backend")), 114, "missing a required claim"},
		{"wrong issuer", audIss, hsTok(with(ok, "aud", "redcast", "iss", "evil")), 114, "wrong issuer"},
		{"no issuer", audIss, hsTok(with(ok, "aud", "redcast")), 114, "missing a required claim"},
		{"no exp when required", strict, hsTok(with(ok, "exp", nil)), 114, "missing a required claim"},
		{"no sub", hs, hsTok(with(ok, "sub", nil)), 114, "no user"},
		{"empty sub", hs, hsTok(with(ok, "sub", "")), 114, "no user"},
		{"sub too long", hs, hsTok(with(ok, "sub", strings.Repeat("u", MaxUserSize+1))), 114, "longer than"},
		{"sub not a string", hs, hsTok(with(ok, "sub", 42)), 114, "malformed"},
		{"exp not a number", hs, hsTok(with(ok, "exp", "tomorrow")), 114, "malformed"},
		{"info not an object", hs, hsTok(with(ok, "info", "Alice")), 114, "info claim: not a JSON object"},
		{"info a list", hs, hsTok(with(ok, "info", []int{1})), 114, "not a JSON object"},
		{"info too large", hs, hsTok(with(ok, "info", map[string]string{"name": strings.Repeat("x", MaxInfoSize)})), 114, "info claim"},
		{"bad channel in channels", hs, hsTok(with(ok, "channels", []string{"ok", "not ok"})), 114, "channels claim, item 1"},
		{"channels not a list", hs, hsTok(with(ok, "channels", "chat:x")), 114, "malformed"},
		{"subscription token", hs, hsTok(with(ok, "channel", "private:x")), 114, "subscription token"},
		{"critical header", hs, critical, 114, "crit"},
		{"oversized", hs, hsTok(with(ok, "pad", strings.Repeat("x", MaxTokenSize))), 114, "longer than 8192 bytes"},
		{"empty", hs, "", 114, "empty token"},
		{"garbage", hs, "garbage", 114, "malformed"},
		{"two segments", hs, "a.b", 114, "malformed"},
		{"four segments", hs, hsTok(ok) + ".x", 114, "malformed"},
		{"bad base64", hs, "!!!.???.***", 114, "malformed"},
		{"header not JSON", hs, "bm90IGpzb24.e30.c2ln", 114, "malformed"},
		{"claims a list", hs, "eyJhbGciOiJIUzI1NiJ9.WzFd.c2ln", 114, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := tc.v.VerifyConnect(tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", creds)
			}
			if got := code(err); got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, err, tc.code)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			want := ErrUnauthorized
			if tc.code == 115 {
				want = ErrTokenExpired
			}
			if !errors.Is(err, want) {
				t.Errorf("errors.Is(%v, %v) = false", err, want)
			}
		})
	}
}

func TestVerifyRefresh(t *testing.T) {
	v := newVerifier(t, Config{HMACSecret: testSecret})
	alice := &Credentials{User: "alice"}
	if creds, err := v.VerifyRefresh(sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("alice")), alice); err != nil || creds.User != "alice" {
		t.Errorf("refresh for the same user: %+v, %v", creds, err)
	}
	if _, err := v.VerifyRefresh(sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("bob")), alice); code(err) != 114 {
		t.Errorf("refresh for another user: %v, want 114", err)
	}
	if _, err := v.VerifyRefresh(sign(t, jwt.SigningMethodHS256, testSecret, with(claimsFor("alice"), "exp", time.Now().Add(-time.Minute).Unix())), alice); code(err) != 115 {
		t.Errorf("refresh with an expired token: %v, want 115", err)
	}
}

func TestVerifySubscribe(t *testing.T) {
	v := newVerifier(t, Config{HMACSecret: testSecret, Audience: "redcast"})
	sub := with(claimsFor("alice"), "channel", "private:room", "aud", "redcast")
	tok := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, c) }
	if err := v.VerifySubscribe(tok(sub), "alice", "private:room"); err != nil {
		t.Fatalf("valid subscription token: %v", err)
	}
	for _, tc := range []struct {
		name, token, user, channel string
		code                       uint32
	}{
		{"another channel", tok(sub), "alice", "private:other", 107},
		{"another user", tok(sub), "bob", "private:room", 107},
		{"anonymous", tok(sub), "", "private:room", 107},
		{"a connection token", tok(with(sub, "channel", nil)), "alice", "private:room", 107},
		{"expired", tok(with(sub, "exp", time.Now().Add(-time.Minute).Unix())), "alice", "private:room", 115},
		{"wrong audience", tok(with(sub, "aud", "x")), "alice", "private:room", 107},
		{"bad signature", sign(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two byte"), sub), "alice", "private:room", 107},
		{"alg none", raw(map[string]any{"alg": "none"}, sub, nil), "alice", "private:room", 107},
		{"RS256 key confusion", sign(t, jwt.SigningMethodRS256, rsaKey(), sub), "alice", "private:room", 107},
		{"garbage", "garbage", "alice", "private:room", 107},
		{"empty", "", "alice", "private:room", 107},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.VerifySubscribe(tc.token, tc.user, tc.channel)
			if got := code(err); got != tc.code {
				t.Fatalf("VerifySubscribe = %v, want code %d", err, tc.code)
			}
		})
	}
}

func TestNewVerifierDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"secret", Config{HMACSecret: testSecret}, []string{"HS256"}},
		{"RSA", Config{PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey}}, []string{"RS256", "RS384", "RS512"}},
		{"P-256", Config{PublicKeys: []crypto.PublicKey{&p256Key().PublicKey}}, []string{"ES256"}},
		{"P-384 and secret", Config{HMACSecret: testSecret, PublicKeys: []crypto.PublicKey{&p384Key().PublicKey}}, []string{"ES384", "HS256"}},
		{"pinned", Config{PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey}, Algorithms: []string{"RS256"}}, []string{"RS256"}},
	} {
		if got := newVerifier(t, tc.cfg).Algorithms(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: algorithms %q, want %q", tc.name, got, tc.want)
		}
	}
	// A pinned RS256 refuses RS512 although the key could verify it.
	v := newVerifier(t, Config{PublicKeys: []crypto.PublicKey{&rsaKey().PublicKey}, Algorithms: []string{"RS256"}})
	if _, err := v.VerifyConnect(sign(t, jwt.SigningMethodRS512, rsaKey(), claimsFor("a"))); code(err) != 114 {
		t.Errorf("RS512 with RS256 pinned: %v", err)
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	small := mustRSA(1024)
	p224 := mustEC(elliptic.P224())
	privDER, _ := x509.MarshalPKCS8PrivateKey(p256Key())
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	rsaKeys := []crypto.PublicKey{&rsaKey().PublicKey}
	for _, tc := range []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"nothing", Config{Audience: "x"}, "no HMAC secret or public key"},
		{"short secret", Config{HMACSecret: []byte("secret")}, "at least 32 needed"},
		{"negative leeway", Config{HMACSecret: testSecret, Leeway: -time.Second}, "negative leeway"},
		{"none pinned", Config{HMACSecret: testSecret, Algorithms: []string{"none"}}, `unsupported algorithm "none"`},
		{"PS256 pinned", Config{PublicKeys: rsaKeys, Algorithms: []string{"PS256"}}, "unsupported algorithm"},
		{"RS256 without an RSA key", Config{HMACSecret: testSecret, Algorithms: []string{"HS256", "RS256"}}, "no public key verifies it"},
		{"HS256 without a secret", Config{PublicKeys: rsaKeys, Algorithms: []string{"HS256", "RS256"}}, "needs an HMAC secret"},
		{"HS512 with a short secret", Config{HMACSecret: testSecret, Algorithms: []string{"HS512"}}, "at least 64 bytes"},
		{"secret unused", Config{HMACSecret: testSecret, PublicKeys: rsaKeys, Algorithms: []string{"RS256"}}, "no HS algorithm is pinned"},
		{"key unused", Config{HMACSecret: testSecret, PublicKeys: rsaKeys, Algorithms: []string{"HS256"}}, "none of them is pinned"},
		{"ES256 with a P-384 key", Config{PublicKeys: []crypto.PublicKey{&p384Key().PublicKey}, Algorithms: []string{"ES256"}}, "no public key verifies it"},
		{"small RSA key", Config{PublicKeys: []crypto.PublicKey{&small.PublicKey}}, "1024 bits"},
		{"P-224 key", Config{PublicKeyFile: writeFile(t, "p224.pem", pemOf(t, &p224.PublicKey))}, "P-224"},
		{"missing key file", Config{PublicKeyFile: "/nonexistent/key.pem"}, "no such file"},
		{"private key file", Config{PublicKeyFile: writeFile(t, "priv.pem", privPEM)}, "a private key"},
		{"empty key file", Config{PublicKeyFile: writeFile(t, "empty.pem", nil)}, "no PEM-encoded public key"},
		{"junk after the key", Config{PublicKeyFile: writeFile(t, "junk.pem", append(pemOf(t, &rsaKey().PublicKey), "junk"...))}, "after the last PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.cfg)
			if err == nil {
				t.Fatalf("NewVerifier accepted %+v: %v", tc.cfg, v.Algorithms())
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestParsePublicKeysFormats(t *testing.T) {
	pub := &rsaKey().PublicKey
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p256Key().PublicKey, p256Key())
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keys, err := ParsePublicKeys(append(pkcs1, cert...))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !pub.Equal(keys[0]) || !p256Key().PublicKey.Equal(keys[1].(*ecdsa.PublicKey)) {
		t.Errorf("keys = %v", keys)
	}
}
