package test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// authConfig is a node that verifies HS256 tokens signed with testSecret,
// with an open chat namespace, a private namespace (subscription tokens),
// a dm namespace for user-limited channels and a namespace without
// publisher info.
func authConfig(t *testing.T, requireToken bool) redcast.Config {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ns := auth.DefaultNamespaces()
	ns["private"] = auth.Namespace{Subscribe: auth.SubscribeToken, Publish: true, HistorySize: 10, AttachInfo: true}
	ns["dm"] = auth.Namespace{Subscribe: auth.SubscribeAuthenticated, Publish: true, AttachInfo: true}
	ns["news"] = auth.Namespace{Subscribe: auth.SubscribeAuthenticated, Publish: true}
	return redcast.Config{Verifier: v, RequireToken: requireToken, Namespaces: ns, RefreshGrace: 500 * time.Millisecond}
}

func mint(t *testing.T, o auth.MintOptions) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func dialToken(t *testing.T, base, token string) (*conn, error) {
	t.Helper()
	rec := &recorder{}
	c, err := client.Dial(testContext(t), protocolURL(base), client.Options{Token: token, OnPush: rec.add})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &conn{Client: c, recorder: rec}, nil
}

// TestConnectWithToken: a valid token makes the client its user, shown to
// others with the token's info; bad tokens are refused with 114, expired
// ones with 115, and a node that requires tokens refuses anonymous clients.
func TestConnectWithToken(t *testing.T) {
	base, _ := startServer(t, authConfig(t, true))
	ctx := testContext(t)
	alice, err := dialToken(t, base, mint(t, auth.MintOptions{User: "alice", Info: []byte(`{"name":"Alice"}`)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Subscribe(ctx, "chat:auth", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	cl, err := alice.Presence(ctx, "chat:auth")
	if err != nil || len(cl) != 1 || cl[0].User != "alice" || string(cl[0].Info) != `{"name":"Alice"}` {
		t.Fatalf("presence = %+v, %v; want alice with her info", cl, err)
	}

	expired := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()})
	expiredTok, _ := expired.SignedString(testSecret)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice"})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := auth.Mint([]byte("another-secret-another-secret-32b"), auth.MintOptions{User: "alice"})
	for _, tc := range []struct {
		what, token string
		want        *protocol.Error
	}{
		{"expired token", expiredTok, protocol.ErrTokenExpired},
		{"alg none", noneTok, protocol.ErrUnauthorized},
		{"another secret", other, protocol.ErrUnauthorized},
		{"garbage", "not.a.token", protocol.ErrUnauthorized},
		{"no token on a node that requires one", "", protocol.ErrUnauthorized},
	} {
		_, err := dialToken(t, base, tc.token)
		wantError(t, tc.what, err, tc.want)
	}
	// Plain mode is anonymous: refused before the upgrade.
	_, err = dialRawDialer(t, ws.Dialer{}, plainURL(base, "auth", ""))
	var se ws.StatusError
	if !errors.As(err, &se) || int(se) != http.StatusUnauthorized {
		t.Fatalf("plain client on a node that requires tokens: %v, want HTTP 401", err)
	}
}

// TestTokenRefresh: when a token expires the client gets a refresh push and
// its commands are refused with 115 until it refreshes; a client that does
// not refresh in time is disconnected with 3006.
func TestTokenRefresh(t *testing.T) {
	base, _ := startServer(t, authConfig(t, false))
	ctx := testContext(t)
	short := auth.MintOptions{User: "alice", TTL: 2 * time.Second}
	a, err := dialToken(t, base, mint(t, short))
	if err != nil {
		t.Fatal(err)
	}
	b, err := dialToken(t, base, mint(t, auth.MintOptions{User: "bob", TTL: 2 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refresh push", func() bool { return len(a.ofType(protocol.PushRefresh, "")) > 0 })
	_, err = a.Publish(ctx, "chat:r", 1)
	wantError(t, "publish with an expired token", err, protocol.ErrTokenExpired)
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("ping with an expired token: %v", err)
	}
	res, err := a.Refresh(ctx, mint(t, auth.MintOptions{User: "alice"}))
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if res.TTL <= 0 {
		t.Fatalf("refresh result %+v, want a ttl", res)
	}
	if _, err := a.Publish(ctx, "chat:r", 2); err != nil {
		t.Fatalf("publish after refresh: %v", err)
	}
	_, err = a.Refresh(ctx, mint(t, auth.MintOptions{User: "mallory"}))
	wantError(t, "refresh as another user", err, protocol.ErrUnauthorized)

	waitClosed(t, b)
	wantDisconnect(t, "client that did not refresh", b.Err(), protocol.DisconnectTokenExpired.Code)
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("the refreshed client was disconnected: %v", err)
	}
}

// TestChannelPermissions: namespaces decide who may subscribe and publish.
func TestChannelPermissions(t *testing.T) {
	base, _ := startServer(t, authConfig(t, false))
	ctx := testContext(t)
	anon := dial(t, base, "anon")
	alice, err := dialToken(t, base, mint(t, auth.MintOptions{User: "alice"}))
	if err != nil {
		t.Fatal(err)
	}
	carol, err := dialToken(t, base, mint(t, auth.MintOptions{User: "carol", Channels: []string{"private:listed"}}))
	if err != nil {
		t.Fatal(err)
	}

	// Authenticated-only namespace.
	_, err = anon.Subscribe(ctx, "news:x", client.SubscribeOptions{})
	wantError(t, "anonymous subscribe to news", err, protocol.ErrPermissionDenied)
	_, err = anon.Publish(ctx, "news:x", 1)
	wantError(t, "anonymous publish to news", err, protocol.ErrPermissionDenied)
	if _, err := alice.Subscribe(ctx, "news:x", client.SubscribeOptions{}); err != nil {
		t.Fatalf("alice subscribe to news: %v", err)
	}

	// Private channels need a subscription token for that user and channel.
	_, err = alice.Subscribe(ctx, "private:a", client.SubscribeOptions{})
	wantError(t, "private channel without a token", err, protocol.ErrPermissionDenied)
	_, err = alice.Subscribe(ctx, "private:a", client.SubscribeOptions{Token: mint(t, auth.MintOptions{User: "alice", Channel: "private:b"})})
	wantError(t, "token for another channel", err, protocol.ErrPermissionDenied)
	_, err = alice.Subscribe(ctx, "private:a", client.SubscribeOptions{Token: mint(t, auth.MintOptions{User: "bob", Channel: "private:a"})})
	wantError(t, "token of another user", err, protocol.ErrPermissionDenied)
	if _, err := alice.Subscribe(ctx, "private:a", client.SubscribeOptions{Token: mint(t, auth.MintOptions{User: "alice", Channel: "private:a"})}); err != nil {
		t.Fatalf("private channel with its token: %v", err)
	}
	_, err = alice.History(ctx, "private:b", client.HistoryOptions{})
	wantError(t, "history of a private channel one may not join", err, protocol.ErrPermissionDenied)
	if _, err := carol.Subscribe(ctx, "private:listed", client.SubscribeOptions{}); err != nil {
		t.Fatalf("channel listed in the token's channels claim: %v", err)
	}

	// User-limited channels.
	if _, err := alice.Subscribe(ctx, "dm:#alice,bob", client.SubscribeOptions{}); err != nil {
		t.Fatalf("alice in her dm: %v", err)
	}
	_, err = carol.Subscribe(ctx, "dm:#alice,bob", client.SubscribeOptions{})
	wantError(t, "carol in alice and bob's dm", err, protocol.ErrPermissionDenied)
	_, err = anon.Subscribe(ctx, "chat:#alice", client.SubscribeOptions{})
	wantError(t, "anonymous in a user-limited channel", err, protocol.ErrPermissionDenied)

	// A namespace without attach_info publishes without "from".
	if _, err := alice.Publish(ctx, "news:x", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if p := alice.waitPubs(t, "news:x", 1)[0]; p.From != nil {
		t.Errorf("publication in news carries from %+v, want none", p.From)
	}
}

// TestTokenWithinLeeway: a token past its exp but within the verifier's
// leeway is accepted; the connect result gives expires and no ttl (no
// second is left), and the refresh push follows at once.
func TestTokenWithinLeeway(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{HMACSecret: testSecret, Leeway: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base, _ := startServer(t, redcast.Config{Verifier: v})
	// exp is now in whole seconds, rounded down: already past.
	tok := mint(t, auth.MintOptions{User: "alice", TTL: time.Nanosecond})
	c := dialRaw(t, protocolURL(base))
	r := c.call(protocol.MethodConnect, protocol.ConnectParams{Token: tok})
	var res map[string]any
	decodeResult(t, r, &res)
	if _, ok := res["expires"]; !ok {
		t.Errorf("connect result %s has no expires", r.Result)
	}
	if _, ok := res["ttl"]; ok {
		t.Errorf("connect result %s has a ttl, want none for a token past its exp", r.Result)
	}
	for {
		m, err := c.next()
		if err != nil {
			t.Fatalf("waiting for the refresh push: %v", err)
		}
		if m.IsPush() && m.Push.Type == protocol.PushRefresh {
			break
		}
	}
}
