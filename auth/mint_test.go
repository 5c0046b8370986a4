package auth

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMintRoundTrip(t *testing.T) {
	v := newVerifier(t, Config{HMACSecret: testSecret, Audience: "redcast", Issuer: "dev", RequireExpiry: true})
	tok, err := Mint(testSecret, MintOptions{
		User: "alice", Info: []byte(`{ "name": "Alice" }`), Channels: []string{"private:a"},
		Audience: "redcast", Issuer: "dev",
	})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := v.VerifyConnect(tok)
	if err != nil {
		t.Fatal(err)
	}
	if creds.User != "alice" || string(creds.Info) != `{"name":"Alice"}` || !slices.Equal(creds.Channels, []string{"private:a"}) {
		t.Errorf("creds = %+v", creds)
	}
	if d := time.Until(creds.ExpiresAt); d < DefaultTokenTTL-time.Minute || d > DefaultTokenTTL {
		t.Errorf("expires in %v, want the default %v", d, DefaultTokenTTL)
	}

	sub, err := Mint(testSecret, MintOptions{User: "alice", Channel: "private:b", TTL: time.Minute, Audience: "redcast", Issuer: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifySubscribe(sub, "alice", "private:b"); err != nil {
		t.Errorf("minted subscription token: %v", err)
	}
	if _, err := v.VerifyConnect(sub); code(err) != 114 {
		t.Errorf("a subscription token connected: %v", err)
	}
}

func TestMintRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
		opts   MintOptions
		want   string
	}{
		{"short secret", []byte("s"), MintOptions{User: "a"}, "at least 32 needed"},
		{"no user", testSecret, MintOptions{}, "no user"},
		{"long user", testSecret, MintOptions{User: strings.Repeat("u", 256)}, "longer than 255"},
		{"negative TTL", testSecret, MintOptions{User: "a", TTL: -time.Second}, "negative TTL"},
		{"info not JSON", testSecret, MintOptions{User: "a", Info: []byte(`{name: "A"}`)}, "info: not valid JSON"},
		{"info not an object", testSecret, MintOptions{User: "a", Info: []byte(`"Alice"`)}, "info: not a JSON object"},
		{"info too large", testSecret, MintOptions{User: "a", Info: []byte(`{"n":"` + strings.Repeat("x", MaxInfoSize) + `"}`)}, "at most 1024"},
		{"bad channels", testSecret, MintOptions{User: "a", Channels: []string{"a b"}}, "channels:"},
		{"bad channel", testSecret, MintOptions{User: "a", Channel: "a b"}, "channel:"},
		{"channel and info", testSecret, MintOptions{User: "a", Channel: "x", Info: []byte(`{}`)}, "carries no Info or Channels"},
	} {
		if tok, err := Mint(tc.secret, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Mint = %q, %v; want an error about %q", tc.name, tok, err, tc.want)
		}
	}
}
