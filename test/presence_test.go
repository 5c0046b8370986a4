package test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// presenceNames returns the names in a presence result, sorted, failing on
// an entry without a client id.
func presenceNames(t *testing.T, clients []protocol.ClientInfo) []string {
	t.Helper()
	var names []string
	for _, ci := range clients {
		if ci.Client == "" {
			t.Errorf("presence entry %+v has no client id", ci)
		}
		names = append(names, infoName(ci))
	}
	slices.Sort(names)
	return names
}

// infoName returns info.name of a client info ("" when absent).
func infoName(ci protocol.ClientInfo) string {
	var info struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(ci.Info, &info)
	return info.Name
}

// waitPresence waits until the names present in ch are want (sorted).
func waitPresence(t *testing.T, c *conn, ch string, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	waitFor(t, "presence "+ch, func() bool {
		clients, err := c.Presence(testContext(t), ch)
		if err != nil {
			t.Fatalf("presence %s: %v", ch, err)
		}
		got = presenceNames(t, clients)
		return slices.Equal(got, want)
	})
}

func TestPresenceJoinLeave(t *testing.T) {
	const ch = "room"
	base, _ := startServer(t, bareConfig())
	ctx := testContext(t)

	alice := dial(t, base, "alice")
	if _, err := alice.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	// A client receives its own join.
	join := alice.waitPush(t, protocol.PushJoin, ch, alice.ID())
	if infoName(*join.Client) != "alice" || join.Client.User != "" {
		t.Errorf("own join %+v, want info.name alice and no user", join.Client)
	}
	clients, err := alice.Presence(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	if len(clients) != 1 || clients[0].Client != alice.ID() || !jsonEqual(clients[0].Info, []byte(`{"name":"alice"}`)) || clients[0].User != "" {
		t.Errorf("presence %+v, want only alice (%s) with info {\"name\":\"alice\"}", clients, alice.ID())
	}

	bob := dial(t, base, "bob")
	if _, err := bob.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	if j := alice.waitPush(t, protocol.PushJoin, ch, bob.ID()); infoName(*j.Client) != "bob" {
		t.Errorf("join of bob %+v", j.Client)
	}
	bob.waitPush(t, protocol.PushJoin, ch, bob.ID())
	waitPresence(t, alice, ch, "alice", "bob")
	// Presence does not need a subscription.
	outsider := dial(t, base, "outsider")
	waitPresence(t, outsider, ch, "alice", "bob")

	if err := bob.Unsubscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if l := alice.waitPush(t, protocol.PushLeave, ch, bob.ID()); infoName(*l.Client) != "bob" {
		t.Errorf("leave of bob %+v", l.Client)
	}
	waitPresence(t, alice, ch, "alice")

	// Leave on disconnect: a clean close, and a dropped TCP connection.
	carol := dial(t, base, "carol")
	if _, err := carol.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	alice.waitPush(t, protocol.PushJoin, ch, carol.ID())
	carol.Close()
	alice.waitPush(t, protocol.PushLeave, ch, carol.ID())

	dave, daveID := dialRawConnected(t, base, "dave")
	decodeResult(t, dave.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: ch}), nil)
	alice.waitPush(t, protocol.PushJoin, ch, daveID)
	waitPresence(t, alice, ch, "alice", "dave")
	dave.nc.Close() // no close frame
	alice.waitPush(t, protocol.PushLeave, ch, daveID)
	waitPresence(t, alice, ch, "alice")

	// Joins and leaves are not sent on a channel whose namespace has
	// presence off.
	if _, err := alice.Subscribe(ctx, "bare:x", client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Subscribe(ctx, "bare:x", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Unsubscribe(ctx, "bare:x"); err != nil {
		t.Fatal(err)
	}
	publishN(t, bob, "bare:x", 1)
	alice.waitPubs(t, "bare:x", 1)
	if n := len(alice.ofType(protocol.PushJoin, "bare:x")) + len(alice.ofType(protocol.PushLeave, "bare:x")); n != 0 {
		t.Errorf("%d join/leave pushes on a channel without presence", n)
	}
}

// TestJoinLeaveOrder checks that joins and leaves of one channel reach a
// subscriber in the order they happened.
func TestJoinLeaveOrder(t *testing.T) {
	const ch = "flap"
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	watcher := dial(t, base, "watcher")
	if _, err := watcher.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, base, "flapper")
	for range 10 {
		if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Unsubscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	var seq []string
	waitFor(t, "10 joins and 10 leaves", func() bool {
		seq = seq[:0]
		for _, p := range watcher.all() {
			if p.Channel == ch && p.Client != nil && p.Client.Client == c.ID() {
				seq = append(seq, p.Type)
			}
		}
		return len(seq) >= 20
	})
	for i, typ := range seq {
		want := protocol.PushJoin
		if i%2 == 1 {
			want = protocol.PushLeave
		}
		if typ != want {
			t.Fatalf("join/leave sequence %v, want join and leave alternating", seq)
		}
	}
}

// TestJoinLeaveOnRequest: join and leave pushes go only to the subscribers
// that asked for them (join_leave), and only where the namespace allows
// them; the subscribe result says which.
func TestJoinLeaveOnRequest(t *testing.T) {
	const ch = "chat:ask"
	base, _ := startServer(t, bareConfig())
	ctx := testContext(t)

	quiet := dial(t, base, "quiet")
	res, err := quiet.Subscribe(ctx, ch, client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.JoinLeave {
		t.Error("a subscribe that did not ask for join/leave got join_leave: true")
	}
	asker := dial(t, base, "asker")
	if res, err = asker.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	if !res.JoinLeave {
		t.Error("a subscribe that asked for join/leave where the namespace allows it got no join_leave: true")
	}
	if res, err = asker.Subscribe(ctx, "bare:ask", client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	if res.JoinLeave {
		t.Error("join_leave: true in a namespace without join/leave")
	}

	visitor := dial(t, base, "visitor")
	if _, err := visitor.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	asker.waitPush(t, protocol.PushJoin, ch, visitor.ID())
	visitor.Close()
	asker.waitPush(t, protocol.PushLeave, ch, visitor.ID())
	// A publication after the leave reaches quiet after it would have.
	publishN(t, asker, ch, 1)
	quiet.waitPubs(t, ch, 1)
	if n := len(quiet.ofType(protocol.PushJoin, ch)) + len(quiet.ofType(protocol.PushLeave, ch)); n != 0 {
		t.Errorf("a subscriber that did not ask for join/leave got %d join/leave pushes", n)
	}
	// Presence is the same for both.
	waitPresence(t, quiet, ch, "quiet", "asker")
}
