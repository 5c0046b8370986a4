package pusher_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

// startRedisNodes starts n servers with testApp sharing one Redis under
// a prefix of the test's own, and returns their addresses.
func startRedisNodes(t *testing.T, n int) []string {
	t.Helper()
	return startRedisNodesOf(t, n, nil)
}

// startRedisNodesOf is startRedisNodes serving apps (nil: testApp).
func startRedisNodesOf(t *testing.T, n int, apps []pusher.App) []string {
	t.Helper()
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	addrs := make([]string, n)
	for i := range addrs {
		rb, err := redis.New(context.Background(), redis.Config{URL: rs.URL(), Prefix: prefix, PresenceTTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		addrs[i], _ = start(t, server.Config{Broker: rb, Presence: rb, Pusher: pusher.Config{Apps: apps}})
	}
	return addrs
}

// Presence across nodes on Redis: members by user whatever node they are
// on; member_added on a user's first connection anywhere, member_removed
// on its last, once.
func TestPresenceAcrossNodes(t *testing.T) {
	addrs := startRedisNodes(t, 2)
	const ch = "presence-room"
	alice, aliceID := connect(t, addrs[0])
	joinPresence(alice, aliceID, ch, "alice")
	bob1, bob1ID := connect(t, addrs[1])
	if p := joinPresence(bob1, bob1ID, ch, "bob"); asJSON(t, p["ids"]) != `["alice","bob"]` && asJSON(t, p["ids"]) != `["bob","alice"]` {
		t.Fatalf("bob on the other node sees %v, want alice and bob", p["ids"])
	}
	if m := alice.Read(); m.Event != "pusher_internal:member_added" || m.DataString(t) != `{"user_id":"bob","user_info":{"name":"bob"}}` {
		t.Fatalf("alice got %+v, want bob added", m)
	}
	bob2, bob2ID := connect(t, addrs[0])
	if p := joinPresence(bob2, bob2ID, ch, "bob"); p["count"] != float64(2) {
		t.Fatalf("bob's second connection sees %v", p)
	}
	bob1.Send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": ch}})
	// bob is still there (bob2): bob1 joins again and leaves, a client
	// event marks the moment.
	joinPresence(bob1, bob1ID, ch, "bob")
	bob1.Send(map[string]any{"event": "client-mark", "channel": ch, "data": map[string]int{}})
	if m := alice.Read(); m.Event != "client-mark" {
		t.Fatalf("alice got %+v, want no member event before the mark", m)
	}
	bob1.NC.Close()
	bob2.NC.Close()
	if m := alice.Read(); m.Event != "pusher_internal:member_removed" || m.DataString(t) != `{"user_id":"bob"}` {
		t.Fatalf("alice got %+v, want bob removed", m)
	}
	carol, carolID := connect(t, addrs[1])
	wait.For(t, "bob gone from presence", func() bool {
		p := joinPresence(carol, carolID, ch, "carol")
		carol.Send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": ch}})
		return p["count"] == float64(2)
	})
	for {
		m := alice.Read()
		if m.Event == "pusher_internal:member_removed" && m.DataString(t) == `{"user_id":"carol"}` {
			break // carol came and went; bob is not removed twice
		}
		if m.Event != "pusher_internal:member_added" && m.Event != "pusher_internal:member_removed" || m.DataString(t) == `{"user_id":"bob"}` {
			t.Fatalf("alice got %+v", m)
		}
	}
}

// Pusher's server SDK queries channels, a channel and a presence
// channel's users on one node of two on Redis, and triggers asking for
// info: the answers count the connections of both nodes (subscription
// counts of channels with and without presence alike), users once however
// many connections they have; a wrong secret gets 401.
func TestPusherSDKQueryAcrossNodes(t *testing.T) {
	addrs := startRedisNodes(t, 2)
	for _, addr := range addrs { // a news subscriber on each node
		news, _ := connect(t, addr)
		if m := news.Subscribe("news", ""); m.Event != "pusher_internal:subscription_succeeded" {
			t.Fatalf("subscribe: %+v", m)
		}
	}
	for i, user := range []string{"ann", "ann", "ben"} {
		c, id := connect(t, addrs[i%2])
		joinPresence(c, id, "presence-room", user)
	}
	s := runScenario(t, addrs[0], "query")
	for _, want := range []struct{ step, answer string }{
		{"all", `{"body":{"channels":{"news":{},"presence-room":{}}},"status":200}`},
		{"presence", `{"body":{"channels":{"presence-room":{"user_count":2}}},"status":200}`},
		{"room", `{"body":{"occupied":true,"subscription_count":3,"user_count":2},"status":200}`},
		{"news", `{"body":{"occupied":true},"status":200}`},
		{"empty", `{"body":{"occupied":false},"status":200}`},
		{"users", `{"body":{"users":[{"id":"ann"},{"id":"ben"}]},"status":200}`},
		{"news_users", `{"body":"Users are listed for presence channels only, not \"news\"\n","status":400}`},
		{"news_user_count", `{"body":"info=user_count is available for presence channels only\n","status":400}`},
		// A channel without presence: every node's subscriptions.
		{"news_subscription_count", `{"body":{"occupied":true,"subscription_count":2},"status":200}`},
		{"wrong_secret", `{"body":"invalid signature: expected the hex HMAC-SHA256 of \"GET\\n/apps/1/channels\\nauth_key=app-key\u0026auth_timestamp=`},
		{"trigger_info", `{"body":{"channels":{"news":{"subscription_count":2},"presence-room":{"subscription_count":3,"user_count":2}}},"status":200}`},
		{"batch_info", `{"body":{"batch":[{"user_count":2},{}]},"status":200}`},
	} {
		m := s.step(want.step)
		delete(m, "step")
		if got := asJSON(t, m); !strings.HasPrefix(got, want.answer) || want.step == "wrong_secret" && m["status"] != float64(401) {
			t.Errorf("%s: got %s, want %s", want.step, got, want.answer)
		}
	}
}

// Pusher's server SDK terminates a user's connections on one node of two
// on Redis: both of ann's connections, one on each node, are closed with
// 4009; ben stays and sees ann leave.
func TestPusherSDKTerminateAcrossNodes(t *testing.T) {
	addrs := startRedisNodes(t, 2)
	var anns []*client
	for i := range 2 {
		c, id := connect(t, addrs[i])
		joinPresence(c, id, "presence-room", "ann")
		anns = append(anns, c)
	}
	ben, benID := connect(t, addrs[1])
	joinPresence(ben, benID, "presence-room", "ben")
	m := runScenario(t, addrs[0], "terminate", "TERMINATE_USER=ann").step("done")
	if m["status"] != float64(200) || asJSON(t, m["body"]) != "{}" {
		t.Errorf("terminateUserConnections answered %v", m)
	}
	for i, c := range anns {
		if code, _ := c.ReadClose(); code != 4009 {
			t.Errorf("ann's connection %d closed with %d, want 4009", i, code)
		}
	}
	if m := ben.Read(); m.Event != "pusher_internal:member_removed" || m.DataString(t) != `{"user_id":"ann"}` {
		t.Errorf("ben got %+v, want ann removed", m)
	}
}

// An app's max_connections holds across nodes: with one connection on
// each of two nodes and a limit of 3, a fourth connection is refused with
// 4004 on either node once the nodes announced their counts, and a slot
// freed on one node is usable from the other.
func TestPusherMaxConnectionsAcrossNodes(t *testing.T) {
	app := testApp
	app.MaxConnections = 3
	addrs := startRedisNodesOf(t, 2, []pusher.App{app})
	connect(t, addrs[0])
	connect(t, addrs[1])
	third, _ := connect(t, addrs[1])
	// Each node hears of the other's connections at its next
	// announcement.
	refused := func(addr string) bool {
		c := dial(t, addr, app.Key, "protocol=7")
		defer c.NC.Close()
		m := c.Read()
		if m.Event == "pusher:connection_established" {
			return false
		}
		code, _ := errorData(t, m)
		return code != nil && *code == 4004
	}
	wait.For(t, "a fourth connection refused on the first node", func() bool { return refused(addrs[0]) })
	wait.For(t, "a fourth connection refused on the second node", func() bool { return refused(addrs[1]) })
	third.NC.Close()
	wait.For(t, "a connection accepted on the first node again", func() bool { return !refused(addrs[0]) })
}
