package redis

import (
	"testing"
	"time"

	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// TestPresenceKeysExpire lets every node "crash" (nobody refreshes or
// expires anything): the channel's presence keys, user counts included,
// are gone from Redis within the TTL.
func TestPresenceKeysExpire(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	const ttl = 300 * time.Millisecond
	b := newBroker(t, srv, Config{Prefix: newPrefix(), PresenceTTL: ttl})
	for _, info := range []*protocol.ClientInfo{clientInfo("ann"), {Client: "tab1", User: "bob"}, {Client: "tab2", User: "bob"}} {
		if _, err := b.AddPresence(t.Context(), "room", info); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := srv.Do(t.Context(), "DBSIZE"); err != nil || n != "3" {
		t.Fatalf("DBSIZE %q, %v; want the 3 presence keys of the channel", n, err)
	}
	b.Close()
	begin := time.Now()
	brokertest.WaitFor(t, "presence keys to expire once nobody refreshes", func() bool {
		n, err := srv.Do(t.Context(), "DBSIZE")
		return err == nil && n == "0"
	})
	if d := time.Since(begin); d > ttl+time.Second {
		t.Errorf("the keys stayed %v, want about %v", d, ttl)
	}
}
