package redis

import (
	"testing"
	"time"

	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
)

// TestPresenceExpires lets a node "crash" (it stops refreshing and never
// removes its clients): its clients disappear within PresenceTTL, while
// the clients another node refreshes stay; once nobody refreshes, the
// channel's presence keys are gone from Redis too.
func TestPresenceExpires(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	const ttl = 300 * time.Millisecond
	cfg := Config{Prefix: newPrefix(), PresenceTTL: ttl}
	crashed, alive := newBroker(t, srv, cfg), newBroker(t, srv, cfg)
	if got := alive.PresenceRefreshInterval(); got != ttl/3 {
		t.Errorf("PresenceRefreshInterval %v, want %v", got, ttl/3)
	}
	ann, bob := clientInfo("ann"), clientInfo("bob")
	if err := crashed.AddPresence(t.Context(), "room", ann); err != nil {
		t.Fatal(err)
	}
	if err := alive.AddPresence(t.Context(), "room", bob); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*Broker{crashed, alive} {
		if infos, err := b.Presence(t.Context(), "room"); err != nil || len(infos) != 2 {
			t.Fatalf("Presence: %d clients, %v; want ann and bob from either node", len(infos), err)
		}
	}
	crashed.Close()
	begin := time.Now()
	brokertest.WaitFor(t, "the crashed node's client to expire", func() bool {
		if err := alive.AddPresence(t.Context(), "room", bob); err != nil { // bob's node refreshes
			t.Fatal(err)
		}
		infos, err := alive.Presence(t.Context(), "room")
		if err != nil {
			t.Fatal(err)
		}
		return len(infos) == 1 && infos[0].Client == "bob" && infos[0].User == bob.User && string(infos[0].Info) == string(bob.Info)
	})
	if d := time.Since(begin); d > ttl+time.Second {
		t.Errorf("ann stayed %v after her node died, want about %v", d, ttl)
	}
	brokertest.WaitFor(t, "presence keys to expire once nobody refreshes", func() bool {
		n, err := srv.Do(t.Context(), "DBSIZE")
		return err == nil && n == "0"
	})
}
