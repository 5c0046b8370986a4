package test

import (
	"context"
	"fmt"
	"github.com/redcast/redcast/auth"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/internal/webhooktest"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/webhook"
)

const hookSecret = "webhook-secret"

// startReceiver starts a receiver that refuses requests whose
// X-Redcast-Signature is not the HMAC of their body with hookSecret.
func startReceiver(t *testing.T) *webhooktest.Receiver {
	return webhooktest.Start(t, func(h http.Header, body []byte) bool {
		return h.Get("X-Redcast-Signature") == webhook.Sign(hookSecret, body)
	})
}

// hookConfig is a server configuration sending native webhooks to r.
func hookConfig(r *webhooktest.Receiver) server.Config {
	return server.Config{
		Webhook:  server.Webhook{URL: r.URL(), Secret: hookSecret},
		Webhooks: webhook.Config{Window: 5 * time.Millisecond},
	}
}

// names returns the "name user/client" of events, to compare sequences.
func names(evs []webhooktest.Event) string {
	var out []string
	for _, e := range evs {
		s := e.Name()
		if c, ok := e["client"].(string); ok && c != "" {
			s += " " + c
		}
		if code, ok := e["code"].(float64); ok {
			s += fmt.Sprintf(" %d", int(code))
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// On the memory broker: every transition once, in order per channel, with
// connections opened and closed (the code the server closed them with),
// all signed; Shutdown delivers the last ones.
func TestWebhookMemory(t *testing.T) {
	r := startReceiver(t)
	addr, srv := testserver.Start(t, hookConfig(r))
	base := "ws://" + addr
	ctx := testContext(t)
	const ch = "chat:room"
	a := dial(t, base, "alice")
	if _, err := a.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	b := dial(t, base, "bob")
	if _, err := b.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.Unsubscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	want := fmt.Sprintf("channel_occupied, presence_join %s, presence_join %s, presence_leave %s, presence_join %s, presence_leave %s",
		a.ID(), b.ID(), a.ID(), a.ID(), a.ID())
	waitFor(t, "alice's events", func() bool { return len(r.Of(ch)) >= 6 })
	if got := names(r.Of(ch)); got != want {
		t.Errorf("events of %s:\n got %s\nwant %s", ch, got, want)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown returns once the webhooks are delivered: no waiting.
	want += fmt.Sprintf(", presence_leave %s, channel_vacated", b.ID())
	if got := names(r.Of(ch)); got != want {
		t.Errorf("events of %s after shutdown:\n got %s\nwant %s", ch, got, want)
	}
	conns := names(r.Of(""))
	wantConns := fmt.Sprintf("connection_opened %s, connection_opened %s, connection_closed %s 0, connection_closed %s 3001", a.ID(), b.ID(), a.ID(), b.ID())
	if conns != wantConns {
		t.Errorf("connection events:\n got %s\nwant %s", conns, wantConns)
	}
	for _, e := range r.Events() {
		if e.Name() == "connection_opened" && e["user"] != "" {
			t.Errorf("an anonymous connection with user %v", e["user"])
		}
	}
	if n := r.Unsigned(); n != 0 {
		t.Errorf("%d requests with a wrong signature", n)
	}
}

// startHookNodes starts n servers on one Redis sending webhooks to r.
func startHookNodes(t *testing.T, r *webhooktest.Receiver, n int, ttl time.Duration) []string {
	t.Helper()
	return startHookNodesWith(t, r, n, ttl, func(int, *server.Config) {})
}

// startHookNodesWith is startHookNodes with each server's configuration
// changed by change, given the server's index.
func startHookNodesWith(t *testing.T, r *webhooktest.Receiver, n int, ttl time.Duration, change func(int, *server.Config)) []string {
	t.Helper()
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("hook%d", time.Now().UnixNano())
	bases := make([]string, n)
	for i := range bases {
		rb, err := redis.New(context.Background(), redis.Config{URL: rs.URL(), Prefix: prefix, PresenceTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		cfg := hookConfig(r)
		cfg.Broker, cfg.Presence = rb, rb
		change(i, &cfg)
		addr, _ := testserver.Start(t, cfg)
		bases[i] = "ws://" + addr
	}
	return bases
}

// Two nodes on Redis: channels occupied on both nodes at the same moment,
// then left on both at the same moment, are each occupied once and
// vacated once, in that order.
func TestWebhookTwoNodesOnce(t *testing.T) {
	r := startReceiver(t)
	bases := startHookNodes(t, r, 2, 3*time.Second)
	ctx := testContext(t)
	const channels, perNode = 20, 3
	var conns []*conn
	for _, base := range bases {
		for range perNode {
			conns = append(conns, dial(t, base, ""))
		}
	}
	// Every client subscribes to every channel at once, then leaves at
	// once.
	all := func(op func(c *conn, ch string) error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, c := range conns {
			wg.Go(func() {
				<-start
				for i := range channels {
					if err := op(c, fmt.Sprintf("race%d", i)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		close(start)
		wg.Wait()
	}
	all(func(c *conn, ch string) error { _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); return err })
	waitFor(t, "channels occupied", func() bool { return r.Count("channel_occupied", "") >= channels })
	all(func(c *conn, ch string) error { return c.Unsubscribe(ctx, ch) })
	waitFor(t, "channels vacated", func() bool { return r.Count("channel_vacated", "") >= channels })
	// Duplicates would come from the other node, as fast as these: a
	// round trip through the receiver marks the moment.
	mark := dial(t, bases[0], "")
	if _, err := mark.Subscribe(ctx, "mark", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mark", func() bool { return r.Count("channel_occupied", "mark") == 1 })
	for i := range channels {
		ch := fmt.Sprintf("race%d", i)
		var got []string
		for _, e := range r.Of(ch) {
			if strings.HasPrefix(e.Name(), "channel_") {
				got = append(got, e.Name())
			}
		}
		if strings.Join(got, ",") != "channel_occupied,channel_vacated" {
			t.Errorf("%s: %v, want one channel_occupied then one channel_vacated", ch, got)
		}
		if j, l := r.Count("presence_join", ch), r.Count("presence_leave", ch); j != len(conns) || l != len(conns) {
			t.Errorf("%s: %d presence_join and %d presence_leave, want %d each", ch, j, l, len(conns))
		}
	}
	if n := r.Unsigned(); n != 0 {
		t.Errorf("%d requests with a wrong signature", n)
	}
}

// A node killed with SIGKILL: the channel it alone served is vacated, and
// its client's presence_leave sent, by the node left, within the presence
// TTL; a channel both served stays occupied, its leave sent too. The same
// for a Pusher presence channel: member_removed, then channel_vacated.
func TestWebhookNodeKilled(t *testing.T) {
	r := startReceiver(t)
	const pusherKey, pusherSecret = "hook-key", "hook-secret"
	pr := webhooktest.Start(t, func(h http.Header, body []byte) bool {
		return h.Get("X-Pusher-Key") == pusherKey && h.Get("X-Pusher-Signature") == webhook.Sign(pusherSecret, body)
	})
	rs := testredis.Start(t, testredis.Options{})
	const ttl = 3 * time.Second
	args := []string{"--redis", rs.URL(), "--redis-prefix", "hookcrash", "--presence-ttl", ttl.String(),
		"--webhook-url", r.URL(), "--webhook-secret", hookSecret,
		"--pusher-app-id", "1", "--pusher-key", pusherKey, "--pusher-secret", pusherSecret, "--pusher-webhook-url", pr.URL()}
	victim, survivor := startNodeProcess(t, args...), startNodeProcess(t, append(args, "--log-level", "debug")...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("native webhooks: %v\nPusher webhooks: %v\nsurvivor's log:\n%s", r.Events(), pr.Events(), strings.Join(survivor.logLines(), "\n"))
		}
	})
	ctx := testContext(t)
	pv, pvID := pushertest.Connect(t, victim.addr, pusherKey)
	pv.JoinPresence(pusherKey, pusherSecret, pvID, "presence-lone", "dave")
	v := dial(t, victim.base, "victim")
	s := dial(t, survivor.base, "survivor")
	for _, ch := range []string{"chat:alone", "chat:both"} {
		if _, err := v.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Subscribe(ctx, "chat:both", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the joins", func() bool {
		return r.Count("presence_join", "chat:alone") == 1 && r.Count("presence_join", "chat:both") == 2 &&
			pr.Count("member_added", "presence-lone") == 1
	})
	victim.kill()
	killed := time.Now()
	waitFor(t, "chat:alone vacated", func() bool {
		return r.Count("channel_vacated", "chat:alone") >= 1 && r.Count("presence_leave", "chat:alone") >= 1 &&
			r.Count("presence_leave", "chat:both") >= 1 && pr.Count("channel_vacated", "presence-lone") >= 1
	})
	took := time.Since(killed)
	t.Logf("chat:alone vacated and both leaves sent %v after the kill (TTL %v)", took, ttl)
	if took > ttl+time.Second {
		t.Errorf("the webhooks came %v after the kill, want within the presence TTL %v", took, ttl)
	}
	// Nothing twice, and chat:both stays occupied: watch for another TTL.
	waitFor(t, "a TTL more", func() bool { return time.Since(killed) > 2*ttl })
	for _, c := range []struct {
		name, ch string
		n        int
	}{
		{"channel_occupied", "chat:alone", 1}, {"channel_vacated", "chat:alone", 1}, {"presence_leave", "chat:alone", 1},
		{"channel_occupied", "chat:both", 1}, {"channel_vacated", "chat:both", 0}, {"presence_leave", "chat:both", 1},
	} {
		if n := r.Count(c.name, c.ch); n != c.n {
			t.Errorf("%d %s of %s, want %d", n, c.name, c.ch, c.n)
		}
	}
	if leave := r.Of("chat:alone")[2]; leave.Name() != "presence_leave" || leave["client"] != v.ID() {
		t.Errorf("chat:alone's leave is %v, want the victim's", leave)
	}
	if got := names(pr.Of("presence-lone")); got != "channel_occupied, member_added, member_removed, channel_vacated" {
		t.Errorf("Pusher webhooks of presence-lone: %s", got)
	}
	if r.Unsigned() != 0 || pr.Unsigned() != 0 {
		t.Errorf("%d and %d requests with a wrong signature", r.Unsigned(), pr.Unsigned())
	}
}

// A receiver that hangs slows no delivery: clients subscribe, publish and
// receive as fast with it stuck, and the webhooks arrive once it answers.
func TestWebhookSlowReceiver(t *testing.T) {
	r := startReceiver(t)
	r.Block()
	addr, _ := testserver.Start(t, hookConfig(r))
	base := "ws://" + addr
	ctx := testContext(t)
	sub := dial(t, base, "")
	pub := dial(t, base, "")
	start := time.Now()
	const rounds = 50
	for i := range rounds {
		ch := fmt.Sprintf("chat:slow%d", i)
		if _, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, ch, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
		sub.waitPubs(t, ch, 1)
		if err := sub.Unsubscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	t.Logf("%d rounds of subscribe, publish, receive, unsubscribe took %v with the receiver stuck", rounds, took)
	if took > 5*time.Second {
		t.Errorf("%d rounds took %v with the receiver stuck", rounds, took)
	}
	if n := len(r.Events()); n != 0 {
		t.Fatalf("%d events arrived at a stuck receiver", n)
	}
	r.Unblock()
	waitFor(t, "the webhooks", func() bool { return r.Count("channel_occupied", "") == rounds })
}

// Subscribers of one node leaving a channel at the same moment (on Redis,
// where a leave takes a round trip): every presence_leave comes before the
// channel's channel_vacated.
func TestWebhookLeavesBeforeVacated(t *testing.T) {
	r := startReceiver(t)
	base := startHookNodes(t, r, 1, 3*time.Second)[0]
	ctx := testContext(t)
	const channels, clients = 10, 8
	var conns []*conn
	for range clients {
		conns = append(conns, dial(t, base, ""))
	}
	for i := range channels {
		for _, c := range conns {
			if _, err := c.Subscribe(ctx, fmt.Sprintf("chat:leave%d", i), client.SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.Close() })
	}
	wg.Wait()
	waitFor(t, "every channel vacated", func() bool { return r.Count("channel_vacated", "") == channels })
	for i := range channels {
		evs := r.Of(fmt.Sprintf("chat:leave%d", i))
		if len(evs) != 2+2*clients || evs[len(evs)-1].Name() != "channel_vacated" {
			t.Errorf("chat:leave%d: %s, want %d joins and leaves, then channel_vacated", i, names(evs), clients)
		}
	}
}

// TestWebhookNodeRestartedLate: the only node crashes and comes back after
// more than the presence TTL; its crashed self's leave and the vacancy
// are still announced, late, once.
func TestWebhookNodeRestartedLate(t *testing.T) {
	r := startReceiver(t)
	rs := testredis.Start(t, testredis.Options{})
	const ttl = 3 * time.Second
	args := []string{"--redis", rs.URL(), "--redis-prefix", "hookrestart", "--presence-ttl", ttl.String(),
		"--webhook-url", r.URL(), "--webhook-secret", hookSecret}
	victim := startNodeProcess(t, args...)
	v := dial(t, victim.base, "victim")
	if _, err := v.Subscribe(testContext(t), "chat:alone", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the occupancy and the join", func() bool {
		return r.Count("channel_occupied", "chat:alone") == 1 && r.Count("presence_join", "chat:alone") == 1
	})
	victim.kill()
	killed := time.Now()
	waitFor(t, "the TTL and some", func() bool { return time.Since(killed) > ttl+500*time.Millisecond })
	startNodeProcess(t, args...)
	waitFor(t, "the leave and the vacancy", func() bool {
		return r.Count("channel_vacated", "chat:alone") >= 1 && r.Count("presence_leave", "chat:alone") >= 1
	})
	var got []string
	for _, e := range r.Of("chat:alone") {
		got = append(got, e.Name())
	}
	if strings.Join(got, ", ") != "channel_occupied, presence_join, presence_leave, channel_vacated" {
		t.Errorf("webhooks of chat:alone: %v", got)
	}
}

// A namespace with "webhooks": false is left out of redcast's own
// webhooks: no occupancy, no presence events for its channels.
func TestWebhookNamespaceOff(t *testing.T) {
	r := startReceiver(t)
	cfg := hookConfig(r)
	cfg.Node.Namespaces = auth.DefaultNamespaces()
	quiet := cfg.Node.Namespaces["chat"]
	quiet.NoWebhooks = true
	cfg.Node.Namespaces["quiet"] = quiet
	addr, _ := testserver.Start(t, cfg)
	ctx := testContext(t)
	c := dial(t, "ws://"+addr, "alice")
	// quiet's events, if any, would be queued before chat's: one sender.
	for _, ch := range []string{"quiet:room", "chat:room"} {
		if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []string{"quiet:room", "chat:room"} {
		if err := c.Unsubscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "chat:room vacated", func() bool { return r.Count("channel_vacated", "chat:room") == 1 })
	if evs := r.Of("quiet:room"); len(evs) != 0 {
		t.Errorf("webhooks of a namespace without them: %v", evs)
	}
	if n := r.Count("presence_join", "chat:room"); n != 1 {
		t.Errorf("%d presence_join of chat:room, want 1", n)
	}
}

// TestWebhookOrderAcrossNodes: a channel occupied and vacated again and
// again, by a client of one node and then one of the other, each leaving
// before the next arrives: its events arrive in the order they happened,
// occupied and vacated, join and leave, taking turns, although the nodes
// decided them in turn a moment apart. The first node batches its
// webhooks for 300 ms, the other for 5: if each node sent what it decided,
// the second's would overtake the first's.
func TestWebhookOrderAcrossNodes(t *testing.T) {
	r := startReceiver(t)
	bases := startHookNodesWith(t, r, 2, 3*time.Second, func(i int, cfg *server.Config) {
		if i == 0 {
			cfg.Webhooks.Window = 300 * time.Millisecond
		}
	})
	ctx := testContext(t)
	const rounds = 30
	conns := []*conn{dial(t, bases[0], ""), dial(t, bases[1], "")}
	for i := range rounds {
		c := conns[i%2]
		if _, err := c.Subscribe(ctx, "chat:turns", client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Unsubscribe(ctx, "chat:turns"); err != nil {
			t.Fatal(err)
		}
	}
	// The last leave: the channel ends vacated.
	waitFor(t, "the last vacancy", func() bool {
		evs := r.Of("chat:turns")
		return len(evs) > 0 && evs[len(evs)-1].Name() == "channel_vacated" && r.Count("presence_leave", "chat:turns") == rounds
	})
	var got []string
	for _, e := range r.Of("chat:turns") {
		got = append(got, e.Name())
	}
	// A subscribe may come before the other node's removal of its
	// occupancy entry (the removal follows the unsubscribe reply): then
	// the channel stays occupied. So: occupied, then turns of joins and
	// leaves, with vacated and occupied between a leave and a join.
	next := map[string][]string{
		"":                 {"channel_occupied"},
		"channel_occupied": {"presence_join"},
		"presence_join":    {"presence_leave"},
		"presence_leave":   {"presence_join", "channel_vacated"},
		"channel_vacated":  {"channel_occupied"},
	}
	prev := ""
	for i, name := range got {
		if want := next[prev]; !slices.Contains(want, name) {
			t.Fatalf("event %d is %s, want one of %v; all: %v", i, name, want, got)
		}
		prev = name
	}
	// And the joins in the order of the rounds.
	var joins []string
	for _, e := range r.Of("chat:turns") {
		if e.Name() == "presence_join" {
			joins = append(joins, e["client"].(string))
		}
	}
	if len(joins) != rounds {
		t.Fatalf("%d joins, want %d", len(joins), rounds)
	}
	for i, id := range joins {
		if want := conns[i%2].ID(); id != want {
			t.Fatalf("join %d by %s, want %s (node %d's client)", i, id, want, i%2)
		}
	}
}
