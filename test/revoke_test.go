package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testproxy"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// closeWithin is how soon after the API call returned a revoked or blocked
// connection must be closed, on every node.
const closeWithin = time.Second

// waitClosedWithin waits until c's connection is closed, failing t unless
// it was within closeWithin of since and with the disconnect code.
func waitClosedWithin(t *testing.T, what string, c *conn, since time.Time, code uint16) time.Duration {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("%s: not closed", what)
	}
	took := time.Since(since)
	if took > closeWithin {
		t.Errorf("%s: closed %v after the API call, want within %v", what, took, closeWithin)
	}
	wantDisconnect(t, what, c.Err(), code)
	return took
}

// stillOpen fails t if c's connection was closed: a publish round trip
// proves it serves.
func stillOpen(t *testing.T, what string, c *conn) {
	t.Helper()
	if _, err := c.Publish(testContext(t), "chat:alive", 1); err != nil {
		t.Fatalf("%s: %v, want the connection still open", what, err)
	}
}

// revocationNodes starts two nodes on one Redis with tokens, the API and
// a private namespace.
func revocationNodes(t *testing.T) (a, b *redisNode) {
	t.Helper()
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodesWith(t, rs.URL(), 2, server.Config{Node: authConfig(t, false), APIKey: testAPIKey})
	return nodes[0], nodes[1]
}

// TestRevokeTokenAcrossNodes: a connection token revoked through node A's
// API closes the connections holding it on node B (and A) within a second
// with 3510, and is refused on both afterwards (114), for connect and for
// refresh; other tokens of the same user are unaffected. A revoked
// subscription token closes the connection subscribed with it and is
// refused (107) for new subscribes.
func TestRevokeTokenAcrossNodes(t *testing.T) {
	a, b := revocationNodes(t)
	ctx := testContext(t)
	exp := time.Now().Add(time.Hour)
	revoked := mint(t, auth.MintOptions{User: "alice", ID: "t-1"})
	onB, err := dialToken(t, b.base, revoked)
	if err != nil {
		t.Fatal(err)
	}
	onA, err := dialToken(t, a.base, revoked)
	if err != nil {
		t.Fatal(err)
	}
	other, err := dialToken(t, a.base, mint(t, auth.MintOptions{User: "alice", ID: "t-2"}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apiOK(t, a.http, "revoke_token", map[string]any{"jti": "t-1", "expire_at": exp.Unix()}, nil)
	took := waitClosedWithin(t, "the connection with the revoked token on node B", onB, start, protocol.DisconnectTokenRevoked.Code)
	waitClosedWithin(t, "the connection with the revoked token on node A", onA, start, protocol.DisconnectTokenRevoked.Code)
	t.Logf("node B closed the connection %v after node A's API call returned", took)
	stillOpen(t, "alice's connection with another token", other)
	for _, n := range []*redisNode{a, b} {
		_, err := dialToken(t, n.base, revoked)
		wantError(t, "connect with the revoked token to "+n.http, err, protocol.ErrUnauthorized)
	}
	// A refresh to a revoked token is refused; the connection stays.
	fresh := mint(t, auth.MintOptions{User: "alice", ID: "t-3"})
	apiOK(t, b.http, "revoke_token", map[string]any{"jti": "t-3", "expire_at": exp.Unix()}, nil)
	_, err = other.Refresh(ctx, fresh)
	wantError(t, "refresh to a revoked token", err, protocol.ErrUnauthorized)
	stillOpen(t, "after a refused refresh", other)
	if _, err := other.Refresh(ctx, mint(t, auth.MintOptions{User: "alice", ID: "t-4"})); err != nil {
		t.Fatalf("refresh to a good token: %v", err)
	}

	// Subscription tokens.
	bob, err := dialToken(t, b.base, mint(t, auth.MintOptions{User: "bob", ID: "c-bob"}))
	if err != nil {
		t.Fatal(err)
	}
	subTok := mint(t, auth.MintOptions{User: "bob", Channel: "private:room", ID: "s-1"})
	if _, err := bob.Subscribe(ctx, "private:room", client.SubscribeOptions{Token: subTok}); err != nil {
		t.Fatal(err)
	}
	bob2, err := dialToken(t, a.base, mint(t, auth.MintOptions{User: "bob", ID: "c-bob-2"}))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	apiOK(t, a.http, "revoke_token", map[string]any{"jti": "s-1", "expire_at": exp.Unix()}, nil)
	waitClosedWithin(t, "the connection subscribed with the revoked subscription token", bob, start, protocol.DisconnectTokenRevoked.Code)
	_, err = bob2.Subscribe(ctx, "private:room", client.SubscribeOptions{Token: subTok})
	wantError(t, "subscribe with the revoked subscription token", err, protocol.ErrPermissionDenied)
	stillOpen(t, "bob's other connection", bob2)
}

// TestInvalidateUserTokensAcrossNodes: invalidating a user's tokens issued
// before a time, through node B, closes the connections of older tokens on
// both nodes (3510) and refuses them; tokens issued since, and other
// users, are unaffected. Tokens without iat count as older.
func TestInvalidateUserTokensAcrossNodes(t *testing.T) {
	a, b := revocationNodes(t)
	now := time.Now()
	old := mint(t, auth.MintOptions{User: "carol", IssuedAt: now.Add(-time.Hour), TTL: 2 * time.Hour})
	newer := mint(t, auth.MintOptions{User: "carol", IssuedAt: now.Add(-time.Minute)})
	oldOnA, err := dialToken(t, a.base, old)
	if err != nil {
		t.Fatal(err)
	}
	oldOnB, err := dialToken(t, b.base, old)
	if err != nil {
		t.Fatal(err)
	}
	newOnA, err := dialToken(t, a.base, newer)
	if err != nil {
		t.Fatal(err)
	}
	dave, err := dialToken(t, a.base, mint(t, auth.MintOptions{User: "dave", IssuedAt: now.Add(-time.Hour), TTL: 2 * time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apiOK(t, b.http, "invalidate_user_tokens", map[string]any{"user": "carol", "issued_before": now.Add(-30 * time.Minute).Unix()}, nil)
	waitClosedWithin(t, "carol's old token on node A", oldOnA, start, protocol.DisconnectTokenRevoked.Code)
	waitClosedWithin(t, "carol's old token on node B", oldOnB, start, protocol.DisconnectTokenRevoked.Code)
	stillOpen(t, "carol's newer token", newOnA)
	stillOpen(t, "dave's old token", dave)
	for _, n := range []*redisNode{a, b} {
		_, err := dialToken(t, n.base, old)
		wantError(t, "carol's old token on "+n.http, err, protocol.ErrUnauthorized)
		if _, err := dialToken(t, n.base, newer); err != nil {
			t.Fatalf("carol's newer token on %s: %v", n.http, err)
		}
	}
}

// TestBlockUserAcrossNodes: a user blocked through node A is disconnected
// on both nodes (3511) and refused until unblocked through node B.
func TestBlockUserAcrossNodes(t *testing.T) {
	a, b := revocationNodes(t)
	tok := mint(t, auth.MintOptions{User: "eve"})
	var eves []*conn
	for _, n := range []*redisNode{a, b, b} {
		c, err := dialToken(t, n.base, tok)
		if err != nil {
			t.Fatal(err)
		}
		eves = append(eves, c)
	}
	frank, err := dialToken(t, b.base, mint(t, auth.MintOptions{User: "frank"}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apiOK(t, a.http, "block_user", map[string]string{"user": "eve"}, nil)
	for i, c := range eves {
		waitClosedWithin(t, fmt.Sprintf("eve's connection %d", i), c, start, protocol.DisconnectUserBlocked.Code)
	}
	stillOpen(t, "frank", frank)
	_, err = dialToken(t, b.base, mint(t, auth.MintOptions{User: "eve"}))
	wantError(t, "a blocked user's fresh token", err, protocol.ErrUnauthorized)
	apiOK(t, b.http, "unblock_user", map[string]string{"user": "eve"}, nil)
	for _, n := range []*redisNode{a, b} {
		if _, err := dialToken(t, n.base, tok); err != nil {
			t.Fatalf("eve after unblock, on %s: %v", n.http, err)
		}
	}
}

// TestRevocationAPIErrors: the revocation endpoints refuse bad bodies with
// 101 (HTTP 400).
func TestRevocationAPIErrors(t *testing.T) {
	_, httpBase := startAPIServer(t, authConfig(t, false))
	for _, tc := range []struct{ method, body string }{
		{"revoke_token", `{}`},
		{"revoke_token", `{"jti":"` + strings.Repeat("j", 256) + `"}`},
		{"revoke_token", `{"jti":"j","expire_at":-5}`},
		{"revoke_token", `{"jti":"j","extra":1}`},
		{"invalidate_user_tokens", `{"user":"u"}`},
		{"invalidate_user_tokens", `{"issued_before":1700000000}`},
		{"invalidate_user_tokens", `{"user":"u","issued_before":"yesterday"}`},
		{"block_user", `{"user":""}`},
		{"unblock_user", `{"user":"` + strings.Repeat("u", 256) + `"}`},
	} {
		r := callAPI(t, httpBase, tc.method, "apikey "+testAPIKey, tc.body)
		if r.Status != http.StatusBadRequest || r.Error == nil || r.Error.Code != protocol.ErrBadRequest.Code {
			t.Errorf("%s %s: status %d, body %s; want 400 with error 101", tc.method, tc.body, r.Status, r.Raw)
		}
	}
}

// startNodeAt starts a node on the Redis at url under prefix, which the
// test may stop before it ends (see stop).
func startNodeAt(t *testing.T, url, prefix string, cfg server.Config) *redisNode {
	t.Helper()
	rb, err := redis.New(testContext(t), redis.Config{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Broker, cfg.Presence = rb, rb
	addr, srv := testserver.Start(t, cfg)
	return &redisNode{base: "ws://" + addr, http: "http://" + addr, srv: srv}
}

// stop shuts the node down, disconnecting its clients. (Server.Shutdown
// is once-guarded: the cleanup's own call then returns at once.)
func (n *redisNode) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestRevocationSurvivesRestart: on Redis, revocations and blocks made
// through a node hold for a node started after every node stopped; a
// revocation ends with its expire_at.
func TestRevocationSurvivesRestart(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	cfg := server.Config{Node: authConfig(t, false), APIKey: testAPIKey}
	first := startNodeAt(t, rs.URL(), prefix, cfg)
	revoked := mint(t, auth.MintOptions{User: "gina", ID: "r-1"})
	shortLived := mint(t, auth.MintOptions{User: "gina", ID: "r-2"})
	oldTok := mint(t, auth.MintOptions{User: "hank", IssuedAt: time.Now().Add(-time.Hour), TTL: 2 * time.Hour})
	apiOK(t, first.http, "revoke_token", map[string]any{"jti": "r-1", "expire_at": time.Now().Add(time.Hour).Unix()}, nil)
	// Kept until its expire_at: 2s from now (whole seconds).
	shortUntil := time.Now().Add(2 * time.Second).Unix()
	apiOK(t, first.http, "revoke_token", map[string]any{"jti": "r-2", "expire_at": shortUntil}, nil)
	apiOK(t, first.http, "invalidate_user_tokens", map[string]any{"user": "hank", "issued_before": time.Now().Add(-time.Minute).Unix()}, nil)
	apiOK(t, first.http, "block_user", map[string]string{"user": "ivan"}, nil)
	first.stop(t)

	second := startNodeAt(t, rs.URL(), prefix, cfg)
	for _, tc := range []struct{ what, token string }{
		{"revoked token", revoked},
		{"invalidated token", oldTok},
		{"blocked user", mint(t, auth.MintOptions{User: "ivan"})},
	} {
		_, err := dialToken(t, second.base, tc.token)
		wantError(t, tc.what+" after a restart", err, protocol.ErrUnauthorized)
	}
	if c, err := dialToken(t, second.base, mint(t, auth.MintOptions{User: "gina", ID: "r-3"})); err != nil {
		t.Fatalf("gina's other token: %v", err)
	} else {
		c.Close()
	}
	waitFor(t, "the short revocation to end with its expire_at", func() bool {
		c, err := dialToken(t, second.base, shortLived)
		if err == nil {
			c.Close()
			return true
		}
		if time.Now().Unix() < shortUntil {
			wantError(t, "short-lived revocation before its end", err, protocol.ErrUnauthorized)
		}
		return false
	})
	if time.Now().Unix() < shortUntil {
		t.Fatalf("the revocation of r-2 ended before its expire_at %d", shortUntil)
	}
}

// TestMemoryRevocation: on one node with the memory broker, the same API
// revokes, invalidates and blocks.
func TestMemoryRevocation(t *testing.T) {
	wsBase, httpBase := startAPIServer(t, authConfig(t, false))
	tok := mint(t, auth.MintOptions{User: "jo", ID: "m-1"})
	c, err := dialToken(t, wsBase, tok)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apiOK(t, httpBase, "revoke_token", map[string]any{"jti": "m-1"}, nil)
	waitClosedWithin(t, "revoked on the memory broker", c, start, protocol.DisconnectTokenRevoked.Code)
	_, err = dialToken(t, wsBase, tok)
	wantError(t, "revoked token", err, protocol.ErrUnauthorized)
	c, err = dialToken(t, wsBase, mint(t, auth.MintOptions{User: "jo"}))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	apiOK(t, httpBase, "block_user", map[string]string{"user": "jo"}, nil)
	waitClosedWithin(t, "blocked on the memory broker", c, start, protocol.DisconnectUserBlocked.Code)
	apiOK(t, httpBase, "unblock_user", map[string]string{"user": "jo"}, nil)
	if _, err := dialToken(t, wsBase, mint(t, auth.MintOptions{User: "jo"})); err != nil {
		t.Fatal(err)
	}
}

// TestRevocationMissedDuringOutage: a node whose link to Redis is down
// when a token is revoked and a user blocked through another node misses
// the request to close their connections; once the link is back it finds
// them in Redis and closes those connections.
func TestRevocationMissedDuringOutage(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	cfg := server.Config{Node: authConfig(t, false), APIKey: testAPIKey}
	a := startNodeAt(t, rs.URL(), prefix, cfg)
	proxy := testproxy.New(t, rs.Addr())
	b := startNodeAt(t, "redis://"+proxy.Addr()+"/0", prefix, cfg)
	revoked, err := dialToken(t, b.base, mint(t, auth.MintOptions{User: "kim", ID: "o-1"}))
	if err != nil {
		t.Fatal(err)
	}
	blocked, err := dialToken(t, b.base, mint(t, auth.MintOptions{User: "lee"}))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := dialToken(t, b.base, mint(t, auth.MintOptions{User: "kim", ID: "o-2"}))
	if err != nil {
		t.Fatal(err)
	}

	proxy.SetRefuse(true)
	proxy.Cut()
	waitFor(t, "node B not ready without Redis", func() bool { return !b.ready(t) })
	apiOK(t, a.http, "revoke_token", map[string]any{"jti": "o-1", "expire_at": time.Now().Add(time.Hour).Unix()}, nil)
	apiOK(t, a.http, "block_user", map[string]string{"user": "lee"}, nil)
	if err := revoked.Ping(testContext(t)); err != nil {
		t.Fatalf("node B closed the connection while it could not know: %v", err)
	}

	proxy.SetRefuse(false)
	waitFor(t, "node B ready again", func() bool { return b.ready(t) })
	back := time.Now()
	waitClosed(t, revoked)
	waitClosed(t, blocked)
	t.Logf("node B closed the connections %v after it was ready again", time.Since(back))
	wantDisconnect(t, "the revoked token's connection", revoked.Err(), protocol.DisconnectTokenRevoked.Code)
	wantDisconnect(t, "the blocked user's connection", blocked.Err(), protocol.DisconnectUserBlocked.Code)
	stillOpen(t, "kim's other token", kept)
}
