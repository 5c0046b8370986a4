package redis

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// TestPresenceKeysExpire lets every node "crash" (nobody refreshes or
// expires anything): the channel's presence keys, user counts included,
// are gone from Redis within PresenceKeyTTL.
func TestPresenceKeysExpire(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	const ttl = 300 * time.Millisecond
	b := newBroker(t, srv, Config{Prefix: newPrefix(), PresenceTTL: ttl, PresenceKeyTTL: ttl})
	for _, info := range []*protocol.ClientInfo{clientInfo("ann"), {Client: "tab1", User: "bob"}, {Client: "tab2", User: "bob"}} {
		if _, err := b.AddPresence(t.Context(), "room", info); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := srv.Do(t.Context(), "DBSIZE"); err != nil || n != "4" {
		t.Fatalf("DBSIZE %q, %v; want the 4 presence keys of the channel", n, err)
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

// TestPresenceChangesNumbered: the changes of users of a channel are
// numbered 1, 2, 3... in the order Redis made them, whichever broker made
// them (adds, removes and expiries alike); a client that is not its
// user's first or last changes no number.
func TestPresenceChangesNumbered(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	cfg := Config{Prefix: newPrefix(), PresenceTTL: time.Second}
	a, b := newBroker(t, srv, cfg), newBroker(t, srv, cfg)
	// The channel has history too: the counter is a key of its own.
	mustPublish(t, a, "room", "1")
	var got []string
	note := func(what string, c broker.PresenceChange, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%v/%d", what, c.User, c.Seq))
	}
	c, err := a.AddPresence(t.Context(), "room", clientInfo("ann"))
	note("ann", c, err)
	c, err = b.AddPresence(t.Context(), "room", &protocol.ClientInfo{Client: "tab1", User: "bob"})
	note("+tab1", c, err)
	c, err = a.AddPresence(t.Context(), "room", &protocol.ClientInfo{Client: "tab2", User: "bob"})
	note("+tab2", c, err)
	c, err = a.AddPresence(t.Context(), "room", &protocol.ClientInfo{Client: "tab2", User: "bob"})
	note("tab2 again", c, err)
	c, err = b.RemovePresence(t.Context(), "room", "tab1")
	note("-tab1", c, err)
	c, err = a.RemovePresence(t.Context(), "room", "tab2")
	note("-tab2", c, err)
	c, err = b.AddPresence(t.Context(), "other", &protocol.ClientInfo{Client: "tab3", User: "bob"})
	note("other", c, err)
	var expired []broker.PresenceChange
	brokertest.WaitFor(t, "ann to expire", func() bool {
		cs, err := b.ExpirePresence(t.Context(), "room")
		if err != nil {
			t.Fatal(err)
		}
		expired = append(expired, cs...)
		return len(expired) > 0
	})
	note("ann expired", expired[0], nil)
	want := "ann:true/1 +tab1:true/2 +tab2:false/0 tab2 again:false/0 -tab1:false/0 -tab2:true/3 other:true/1 ann expired:true/4"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("changes\n%s\nwant\n%s", s, want)
	}
}

// TestExpirePresenceSkipsLostEntries: an expired client whose info is gone
// from the presence hash (evicted, or deleted by hand) while its expiry
// stays in the sorted set is removed without a report, and does not make
// ExpirePresence stop before the clients expired after it, in a later
// batch.
func TestExpirePresenceSkipsLostEntries(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	b := newBroker(t, srv, Config{Prefix: newPrefix()})
	const n = expireBatch + 10
	expired := []string{"ZADD", b.tag("room") + ":z", "XX"}
	for i := range n {
		id := fmt.Sprint("c", i)
		if _, err := b.AddPresence(t.Context(), "room", clientInfo(id)); err != nil {
			t.Fatal(err)
		}
		expired = append(expired, fmt.Sprint(i+1), id) // c0 the oldest
	}
	if _, err := srv.Do(t.Context(), expired...); err != nil {
		t.Fatal(err)
	}
	// The oldest clients' infos go: the first batch finds them.
	const lost = 3
	for i := range lost {
		if _, err := srv.Do(t.Context(), "HDEL", b.tag("room")+":p", fmt.Sprint("c", i)); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := b.ExpirePresence(t.Context(), "room")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != n-lost {
		t.Errorf("ExpirePresence returned %d clients, want %d", len(changes), n-lost)
	}
	if left, err := srv.Do(t.Context(), "ZCARD", b.tag("room")+":z"); err != nil || left != "0" {
		t.Errorf("expiry entries left: %q, %v; want 0", left, err)
	}
}
