package test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// TestRedisNodeKilledLeaves kills -9 a node with two clients in a room
// watched from two other nodes, and lets one of the clients reconnect at
// once to another node: each watcher gets exactly one leave per client of
// the dead node, within the presence TTL, and its view of the room (built
// from joins and leaves) converges on presence, the reconnected client
// listed once, under its new connection.
func TestRedisNodeKilledLeaves(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	const ttl = 2 * time.Second
	args := []string{"--redis", rs.URL(), "--redis-prefix", "crash", "--presence-ttl", ttl.String()}
	nodes := []*nodeProcess{startNodeProcess(t, args...), startNodeProcess(t, args...), startNodeProcess(t, args...)}
	ctx := testContext(t)
	const ch = "chat:crash"

	watchers := []*conn{dial(t, nodes[1].base, "w1"), dial(t, nodes[2].base, "w2")}
	for _, w := range watchers {
		if _, err := w.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitPresence(t, watchers[0], ch, "w1", "w2")
	victims := []*conn{dial(t, nodes[0].base, "v1"), dial(t, nodes[0].base, "v2")}
	for _, v := range victims {
		if _, err := v.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, w := range watchers {
			w.waitPush(t, protocol.PushJoin, ch, v.ID())
		}
	}

	nodes[0].kill()
	killed := time.Now()
	back := dial(t, nodes[1].base, "v1")
	if _, err := back.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, w := range watchers {
		for _, v := range victims {
			w.waitPush(t, protocol.PushLeave, ch, v.ID())
		}
	}
	// The TTL, and a second for a loaded machine to deliver the pushes.
	took := time.Since(killed)
	t.Logf("every watcher had both leaves %v after the kill (TTL %v)", took, ttl)
	if took > ttl+time.Second {
		t.Errorf("the leaves came %v after the kill, want within the presence TTL %v", took, ttl)
	}

	// Duplicates would come from the next expiry rounds (every TTL/6 on
	// each node): watch until half a TTL after the deadline.
	want := []string{back.ID(), watchers[0].ID(), watchers[1].ID()}
	slices.Sort(want)
	waitFor(t, "no second leave", func() bool {
		for _, w := range watchers {
			for _, v := range victims {
				if n := countPushes(w, protocol.PushLeave, ch, v.ID()); n != 1 {
					t.Fatalf("%s got %d leaves of %s, want 1", w.ID(), n, v.ID())
				}
			}
		}
		return time.Since(killed) > ttl+ttl/2
	})
	for _, w := range watchers {
		if view := presenceView(w, ch, watchers[0].ID(), watchers[1].ID()); !slices.Equal(view, want) {
			t.Errorf("%s's view of the room from joins and leaves is %v, want %v", w.ID(), view, want)
		}
		clients, err := w.Presence(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, ci := range clients {
			ids = append(ids, ci.Client)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Errorf("presence %v, want %v", ids, want)
		}
	}
}

// countPushes counts the pushes of type typ on ch about client id.
func countPushes(r *conn, typ, ch, id string) int {
	n := 0
	for _, p := range r.ofType(typ, ch) {
		if p.Client != nil && p.Client.Client == id {
			n++
		}
	}
	return n
}

// presenceView returns the client ids in the room, sorted, as the joins and
// leaves r received on ch tell, starting from the ids of a presence
// snapshot taken before the changes that matter.
func presenceView(r *conn, ch string, snapshot ...string) []string {
	in := make(map[string]bool)
	for _, id := range snapshot {
		in[id] = true
	}
	for _, p := range r.all() {
		if p.Channel != ch || p.Client == nil {
			continue
		}
		switch p.Type {
		case protocol.PushJoin:
			in[p.Client.Client] = true
		case protocol.PushLeave:
			delete(in, p.Client.Client)
		}
	}
	return slices.Sorted(maps.Keys(in))
}
