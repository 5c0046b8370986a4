package brokertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// RunPresence runs the PresenceManager checks as subtests of t. newPM is
// called once per subtest and must return a fresh, empty manager that
// shares no channels with any other.
func RunPresence(t *testing.T, newPM func(t *testing.T) broker.PresenceManager) {
	t.Helper()
	checks := []struct {
		name string
		fn   func(t *testing.T, pm broker.PresenceManager)
	}{
		{"AddList", testPresenceAddList},
		{"Refresh", testPresenceRefresh},
		{"Remove", testPresenceRemove},
		{"ChannelsIndependent", testPresenceChannels},
		{"Changes", testPresenceChanges},
		{"UserChanges", testPresenceUserChanges},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newPM(t)) })
	}
}

func add(t *testing.T, pm broker.PresenceManager, ch string, infos ...*protocol.ClientInfo) {
	t.Helper()
	for _, info := range infos {
		if _, err := pm.AddPresence(t.Context(), ch, info); err != nil {
			t.Fatalf("AddPresence(%q, %+v): %v", ch, info, err)
		}
	}
}

func remove(t *testing.T, pm broker.PresenceManager, ch, clientID string) {
	t.Helper()
	if _, err := pm.RemovePresence(t.Context(), ch, clientID); err != nil {
		t.Fatalf("RemovePresence(%q, %q): %v", ch, clientID, err)
	}
}

// checkPresence fails t unless the channel holds exactly want.
func checkPresence(t *testing.T, pm broker.PresenceManager, ch string, want ...*protocol.ClientInfo) {
	t.Helper()
	got, err := pm.Presence(t.Context(), ch)
	if err != nil {
		t.Fatalf("Presence(%q): %v", ch, err)
	}
	byID := make(map[string]*protocol.ClientInfo, len(got))
	for _, info := range got {
		if byID[info.Client] != nil {
			t.Errorf("Presence(%q) lists client %q twice", ch, info.Client)
		}
		byID[info.Client] = info
	}
	if len(byID) != len(want) {
		t.Errorf("Presence(%q) lists %d clients, want %d", ch, len(byID), len(want))
	}
	for _, w := range want {
		if g := byID[w.Client]; !sameClient(g, w) {
			t.Errorf("Presence(%q): client %q is %+v, want %+v", ch, w.Client, g, w)
		}
	}
}

func testPresenceAddList(t *testing.T, pm broker.PresenceManager) {
	checkPresence(t, pm, "a")
	ann, bob := clientInfo("c1", "ann"), clientInfo("c2", "bob")
	add(t, pm, "a", ann, bob)
	checkPresence(t, pm, "a", ann, bob)
}

func testPresenceRefresh(t *testing.T, pm broker.PresenceManager) {
	add(t, pm, "a", clientInfo("c1", "ann"))
	renamed := clientInfo("c1", "anne")
	add(t, pm, "a", renamed)
	checkPresence(t, pm, "a", renamed)
}

func testPresenceRemove(t *testing.T, pm broker.PresenceManager) {
	ann, bob := clientInfo("c1", "ann"), clientInfo("c2", "bob")
	add(t, pm, "a", ann, bob)
	remove(t, pm, "a", ann.Client)
	checkPresence(t, pm, "a", bob)
	remove(t, pm, "a", "unknown")
	remove(t, pm, "never-used", "unknown")
	remove(t, pm, "a", bob.Client)
	checkPresence(t, pm, "a")
}

func testPresenceChannels(t *testing.T, pm broker.PresenceManager) {
	ann, bob := clientInfo("c1", "ann"), clientInfo("c2", "bob")
	add(t, pm, "a", ann)
	add(t, pm, "b", ann, bob)
	remove(t, pm, "b", ann.Client)
	checkPresence(t, pm, "a", ann)
	checkPresence(t, pm, "b", bob)
}

// checkChange fails t unless change reports want (nil: no change) with the
// user flag user.
func checkChange(t *testing.T, what string, change broker.PresenceChange, err error, want *protocol.ClientInfo, user bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !sameClient(change.Client, want) || (want != nil && change.User != user) {
		t.Errorf("%s reported %+v (user %v), want %+v (user %v)", what, change.Client, change.User, want, user)
	}
}

func testPresenceChanges(t *testing.T, pm broker.PresenceManager) {
	ctx := t.Context()
	ann := clientInfo("c1", "ann")
	change, err := pm.AddPresence(ctx, "a", ann)
	checkChange(t, "first add", change, err, ann, true)
	change, err = pm.AddPresence(ctx, "a", clientInfo("c1", "anne"))
	checkChange(t, "second add", change, err, nil, false)
	change, err = pm.AddPresence(ctx, "b", ann)
	checkChange(t, "add to another channel", change, err, ann, true)
	change, err = pm.RemovePresence(ctx, "a", "c1")
	checkChange(t, "remove", change, err, clientInfo("c1", "anne"), true) // the latest info
	change, err = pm.RemovePresence(ctx, "a", "c1")
	checkChange(t, "second remove", change, err, nil, false)
	change, err = pm.RemovePresence(ctx, "never-used", "c1")
	checkChange(t, "remove from an empty channel", change, err, nil, false)
	change, err = pm.AddPresence(ctx, "a", ann)
	checkChange(t, "add after remove", change, err, ann, true)
}

// testPresenceUserChanges checks the user flag: the first client of a user
// to enter and the last to leave are reported as the user's; a client
// without a user is a user of its own.
func testPresenceUserChanges(t *testing.T, pm broker.PresenceManager) {
	ctx := t.Context()
	tab1 := &protocol.ClientInfo{Client: "t1", User: "alice"}
	tab2 := &protocol.ClientInfo{Client: "t2", User: "alice", Info: []byte(`{"tab":2}`)}
	guest1, guest2 := &protocol.ClientInfo{Client: "g1"}, &protocol.ClientInfo{Client: "g2"}
	change, err := pm.AddPresence(ctx, "a", tab1)
	checkChange(t, "alice's first tab", change, err, tab1, true)
	change, err = pm.AddPresence(ctx, "a", tab2)
	checkChange(t, "alice's second tab", change, err, tab2, false)
	change, err = pm.AddPresence(ctx, "b", tab2)
	checkChange(t, "alice's second tab in another channel", change, err, tab2, true)
	change, err = pm.AddPresence(ctx, "a", guest1)
	checkChange(t, "a guest", change, err, guest1, true)
	change, err = pm.AddPresence(ctx, "a", guest2)
	checkChange(t, "another guest", change, err, guest2, true)
	change, err = pm.RemovePresence(ctx, "a", tab1.Client)
	checkChange(t, "alice closes a tab", change, err, tab1, false)
	change, err = pm.RemovePresence(ctx, "a", guest1.Client)
	checkChange(t, "a guest leaves", change, err, guest1, true)
	change, err = pm.RemovePresence(ctx, "a", tab2.Client)
	checkChange(t, "alice closes her last tab", change, err, tab2, true)
	change, err = pm.AddPresence(ctx, "a", tab1)
	checkChange(t, "alice comes back", change, err, tab1, true)
	checkPresence(t, pm, "a", tab1, guest2)
}

// RunPresenceExpiry runs the PresenceExpirer checks as subtests of t.
// newPair is called once per subtest and must return two managers that
// share one fresh, empty presence (two nodes on one Redis, or one memory
// Presence twice), whose entries expire as broker.NewPresenceTiming(ttl)
// says.
func RunPresenceExpiry(t *testing.T, newPair func(t *testing.T, ttl time.Duration) (a, b broker.PresenceExpirer)) {
	t.Helper()
	checks := []struct {
		name string
		fn   func(t *testing.T, a, b broker.PresenceExpirer)
	}{
		{"CrashedClientsExpireOnce", testPresenceExpire},
		{"ConcurrentExpiry", testPresenceExpireConcurrent},
		{"RefreshAfterExpiry", testPresenceRefreshAfterExpiry},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			a, b := newPair(t, expiryTTL)
			if got := a.PresenceTiming(); got != broker.NewPresenceTiming(expiryTTL) {
				t.Fatalf("PresenceTiming %+v, want %+v", got, broker.NewPresenceTiming(expiryTTL))
			}
			c.fn(t, a, b)
		})
	}
}

// expiryTTL is the presence TTL of the expiry checks: short, so that they
// take about a second, and long enough for a loaded machine to refresh in
// time.
const expiryTTL = 600 * time.Millisecond

// expire calls ExpirePresence on ch, failing t on an error.
func expire(t *testing.T, pm broker.PresenceExpirer, ch string) []broker.PresenceChange {
	t.Helper()
	changes, err := pm.ExpirePresence(t.Context(), ch)
	if err != nil {
		t.Fatalf("ExpirePresence(%q): %v", ch, err)
	}
	return changes
}

// testPresenceExpire lets the "node" a crash: its client is hidden from
// Presence once its lifetime passed, then removed by exactly one of the
// ExpirePresence calls of both nodes, within the TTL; the client that b
// keeps refreshing stays.
func testPresenceExpire(t *testing.T, a, b broker.PresenceExpirer) {
	timing := a.PresenceTiming()
	ann, bob := clientInfo("c1", "ann"), clientInfo("c2", "bob")
	add(t, a, "room", ann)
	added := time.Now()
	add(t, b, "room", bob)
	if got := expire(t, b, "room"); len(got) != 0 {
		t.Fatalf("ExpirePresence before any expiry returned %d clients", len(got))
	}
	var got []broker.PresenceChange
	WaitFor(t, "ann to expire", func() bool {
		add(t, b, "room", bob) // b refreshes its client
		got = append(got, expire(t, a, "room")...)
		got = append(got, expire(t, b, "room")...)
		return len(got) > 0
	})
	if took := time.Since(added); took > timing.TTL+time.Second {
		t.Errorf("ann expired %v after her last add, want within the TTL %v", took, timing.TTL)
	}
	if len(got) != 1 || !sameClient(got[0].Client, ann) || !got[0].User {
		t.Fatalf("ExpirePresence returned %+v, want ann once, as her user's last client", got)
	}
	checkPresence(t, a, "room", bob)
	if again := append(expire(t, a, "room"), expire(t, b, "room")...); len(again) != 0 {
		t.Errorf("ExpirePresence returned %+v after ann was removed", again)
	}
	change, err := a.RemovePresence(t.Context(), "room", ann.Client)
	checkChange(t, "removing an expired client", change, err, nil, false)
}

// testPresenceExpireConcurrent expires many clients with both managers
// calling ExpirePresence at once: each client is returned exactly once.
func testPresenceExpireConcurrent(t *testing.T, a, b broker.PresenceExpirer) {
	const n = 1200 // more than one batch of the Redis script
	for i := range n {
		add(t, a, "crowd", clientInfo(fmt.Sprintf("c%d", i), "x"))
	}
	var (
		mu   sync.Mutex
		seen = make(map[string]int)
	)
	WaitFor(t, "every client to expire", func() bool {
		var wg sync.WaitGroup
		for _, pm := range []broker.PresenceExpirer{a, b, a, b} {
			wg.Go(func() {
				changes, err := pm.ExpirePresence(t.Context(), "crowd")
				if err != nil {
					t.Errorf("ExpirePresence: %v", err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, c := range changes {
					seen[c.Client.Client]++
				}
			})
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	for id, k := range seen {
		if k != 1 {
			t.Errorf("client %s expired %d times", id, k)
		}
	}
	checkPresence(t, a, "crowd")
}

// testPresenceRefreshAfterExpiry: a client whose owner refreshes too late
// enters again (its owner then announces a join) once its expiry was
// reported, and not before.
func testPresenceRefreshAfterExpiry(t *testing.T, a, b broker.PresenceExpirer) {
	ann := clientInfo("c1", "ann")
	add(t, a, "room", ann)
	WaitFor(t, "ann to be hidden", func() bool {
		infos, err := b.Presence(t.Context(), "room")
		return err == nil && len(infos) == 0
	})
	// Expired but not yet removed: a late refresh keeps her, unreported.
	change, err := a.AddPresence(t.Context(), "room", ann)
	checkChange(t, "refresh of an expired client not yet removed", change, err, nil, false)
	if got := expire(t, b, "room"); len(got) != 0 {
		t.Errorf("ExpirePresence returned %+v after the refresh", got)
	}
	WaitFor(t, "ann to expire", func() bool { return len(expire(t, b, "room")) == 1 })
	change, err = a.AddPresence(t.Context(), "room", ann)
	checkChange(t, "refresh after the expiry was reported", change, err, ann, true)
	checkPresence(t, b, "room", ann)
}
