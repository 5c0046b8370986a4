package test

import (
	"testing"
	"time"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/internal/testredis"
)

// TestPusherPresenceNodeKilled kills -9 a node with a Pusher user in a
// presence channel: a Pusher client on another node gets the user's
// member_removed within the presence TTL, once.
func TestPusherPresenceNodeKilled(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	const ttl = 2 * time.Second
	const key, secret, ch = "app-key", "app-secret", "presence-crash"
	args := []string{"--redis", rs.URL(), "--redis-prefix", "pcrash", "--presence-ttl", ttl.String(),
		"--pusher-app-id", "1", "--pusher-key", key, "--pusher-secret", secret}
	nodes := []*nodeProcess{startNodeProcess(t, args...), startNodeProcess(t, args...)}

	watcher, watcherID := pushertest.Connect(t, nodes[1].addr, key)
	watcher.JoinPresence(key, secret, watcherID, ch, "watcher")
	victim, victimID := pushertest.Connect(t, nodes[0].addr, key)
	victim.JoinPresence(key, secret, victimID, ch, "victim")
	if m := watcher.Read(); m.Event != "pusher_internal:member_added" || m.DataString(t) != `{"user_id":"victim","user_info":{"name":"victim"}}` {
		t.Fatalf("watcher got %+v, want the victim added", m)
	}

	nodes[0].kill()
	killed := time.Now()
	if m := watcher.Read(); m.Event != "pusher_internal:member_removed" || m.DataString(t) != `{"user_id":"victim"}` {
		t.Fatalf("watcher got %+v, want the victim removed", m)
	}
	// The TTL, and a second for a loaded machine to deliver it.
	took := time.Since(killed)
	t.Logf("member_removed %v after the kill (TTL %v)", took, ttl)
	if took > ttl+time.Second {
		t.Errorf("member_removed came %v after the kill, want within the presence TTL %v", took, ttl)
	}
	// A second removal would come from the next expiry rounds: past them,
	// a new member marks the moment.
	waitFor(t, "the expiry rounds after the removal", func() bool { return time.Since(killed) > ttl+ttl/2 })
	late, lateID := pushertest.Connect(t, nodes[1].addr, key)
	if p := late.JoinPresence(key, secret, lateID, ch, "late"); p["count"] != float64(2) {
		t.Errorf("members after the kill: %v, want watcher and late", p)
	}
	if m := watcher.Read(); m.Event != "pusher_internal:member_added" || m.DataString(t) != `{"user_id":"late","user_info":{"name":"late"}}` {
		t.Fatalf("watcher got %+v, want late added and nothing before", m)
	}
}
