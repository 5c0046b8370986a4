package brokertest

import (
	"testing"

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
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newPM(t)) })
	}
}

func add(t *testing.T, pm broker.PresenceManager, ch string, infos ...*protocol.ClientInfo) {
	t.Helper()
	for _, info := range infos {
		if err := pm.AddPresence(t.Context(), ch, info); err != nil {
			t.Fatalf("AddPresence(%q, %+v): %v", ch, info, err)
		}
	}
}

func remove(t *testing.T, pm broker.PresenceManager, ch, clientID string) {
	t.Helper()
	if err := pm.RemovePresence(t.Context(), ch, clientID); err != nil {
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
