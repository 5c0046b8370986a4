package auth

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redcast/redcast/protocol"
)

// FuzzVerifyConnect feeds arbitrary tokens to a Verifier: it must never
// panic, must refuse with a 114 or 115 protocol error, and what it accepts
// must respect the documented bounds.
func FuzzVerifyConnect(f *testing.F) {
	ok := claimsFor("alice")
	for _, s := range []string{
		sign(f, jwt.SigningMethodHS256, testSecret, ok),
		sign(f, jwt.SigningMethodHS256, testSecret, with(ok, "info", map[string]string{"name": "A"}, "channels", []string{"a", "b#c"})),
		sign(f, jwt.SigningMethodHS256, testSecret, with(ok, "exp", time.Now().Add(-time.Hour).Unix())),
		sign(f, jwt.SigningMethodHS256, testSecret, with(ok, "sub", nil)),
		sign(f, jwt.SigningMethodHS256, testSecret, with(ok, "info", "x")),
		sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "a", "info": nil, "channels": nil, "channel": nil}),
		raw(map[string]any{"alg": "none"}, ok, nil),
		raw(map[string]any{"alg": "HS256", "crit": []string{"b64"}}, ok, []byte("sig")),
		"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJIUzI1NiJ9.WzFd.c2ln",
	} {
		f.Add(s)
	}
	v := newVerifier(f, Config{HMACSecret: testSecret, Leeway: time.Second})
	f.Fuzz(func(t *testing.T, token string) {
		checkVerified(t, v, token)
	})
}

// FuzzVerifyClaims signs arbitrary headers and claims with the verifier's
// own secret, so that the fuzzer gets past the signature and explores the
// checks of the header (alg, crit) and of the claims.
func FuzzVerifyClaims(f *testing.F) {
	f.Add(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"alice","info":{"name":"A"},"channels":["a"]}`)
	f.Add(`{"alg":"HS256"}`, `{"sub":"alice","exp":1,"nbf":9e18,"iat":"x"}`)
	f.Add(`{"alg":"none"}`, `{"sub":""}`)
	f.Add(`{"alg":"HS256","crit":["exp"]}`, `{"sub":"a","channel":"x"}`)
	f.Add(`{"alg":"HS256"}`, `{"sub":"a","info":null,"channels":null,"aud":["x"],"iss":7}`)
	v := newVerifier(f, Config{HMACSecret: testSecret})
	f.Fuzz(func(t *testing.T, header, claims string) {
		enc := base64.RawURLEncoding
		signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
		sig, err := jwt.SigningMethodHS256.Sign(signing, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		checkVerified(t, v, signing+"."+enc.EncodeToString(sig))
	})
}

// checkVerified verifies token and checks the outcome against the
// documented bounds.
func checkVerified(t *testing.T, v *Verifier, token string) {
	creds, err := v.VerifyConnect(token)
	if err != nil {
		if c := code(err); c != 114 && c != 115 {
			t.Fatalf("refusal %v is not error 114 or 115", err)
		}
		return
	}
	if len(token) > MaxTokenSize || creds.User == "" || len(creds.User) > MaxUserSize {
		t.Fatalf("accepted %q as %+v", token, creds)
	}
	if !creds.ExpiresAt.IsZero() && creds.ExpiresAt.Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("accepted a token that expired at %v", creds.ExpiresAt)
	}
	if creds.Info != nil && (len(creds.Info) > MaxInfoSize || !json.Valid(creds.Info) || creds.Info[0] != '{') {
		t.Fatalf("accepted info %q", creds.Info)
	}
	for _, ch := range creds.Channels {
		if err := protocol.ValidateChannel(ch); err != nil {
			t.Fatalf("accepted channel %q", ch)
		}
	}
}

// FuzzLoadConfig feeds arbitrary files to the configuration loader: it must
// never panic, and what it accepts must be valid.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"allow_anonymous": false, "auth": {"secret": "` + string(testSecret) + `", "leeway": "1s"}}`))
	f.Add([]byte(`{"namespaces": {"chat": {"anonymous": true, "publish": true, "history_size": 10, "history_ttl": "1h"}, "": {}}}`))
	f.Add([]byte(`{"limits": {"max_frame_size": 1024, "publish_rate": -1}, "allowed_origins": ["https://a.example", "*"]}`))
	f.Add([]byte(`{"auth": {"public_key_file": "key.pem"}}`))
	f.Add([]byte(`{"namespces": {}}`))
	f.Add([]byte("{\n\"namespaces\": {,}}"))
	if doc, err := os.ReadFile("../docs/configuration.md"); err == nil {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig(data, noFiles)
		if err != nil {
			return
		}
		if !cfg.AllowAnonymous && !cfg.Auth.Enabled() {
			t.Fatal("accepted a configuration no client can connect to")
		}
		if cfg.Auth.Enabled() {
			if _, err := NewVerifier(cfg.Auth); err != nil {
				t.Fatalf("accepted auth that NewVerifier refuses: %v", err)
			}
		}
		for name, ns := range cfg.Namespaces {
			if ns.HistorySize < 0 || ns.HistoryTTL < 0 {
				t.Fatalf("namespace %q: %+v", name, ns)
			}
			switch ns.Subscribe {
			case SubscribePublic, SubscribeAuthenticated, SubscribeToken:
			default:
				t.Fatalf("namespace %q: policy %q", name, ns.Subscribe)
			}
		}
		if err := checkLimits(cfg.Limits); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzReadTokenRef: any string is read without a panic, and a token that
// Mint made is read back as it was minted.
func FuzzReadTokenRef(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	iat := time.Unix(1700000000, 0)
	tok, err := Mint(secret, MintOptions{User: "u", ID: "j-1", IssuedAt: iat})
	if err != nil {
		f.Fatal(err)
	}
	ref, ok := ReadTokenRef(tok)
	if !ok || ref != (TokenRef{User: "u", ID: "j-1", IssuedAt: iat}) {
		f.Fatalf("ReadTokenRef(minted) = %+v, %v", ref, ok)
	}
	for _, s := range []string{tok, "", ".", "..", "a.e30.b", "a.bnVsbA.b", "a.eyJqdGkiOjF9.b", "a.eyJpYXQiOjFlMzAwfQ.x", "a.!!!.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, ok := ReadTokenRef(s)
		if !ok && ref != (TokenRef{}) {
			t.Fatalf("ReadTokenRef(%q) = %+v, false: want the zero ref", s, ref)
		}
	})
}
