package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testproxy"
	"github.com/redcast/redcast/internal/testredis"
)

// probeInterval is the probe interval of the tests: a token that is not
// back by the next round marks its connection deaf, so an interval shorter
// than a round trip through Redis can take on a loaded 2-core machine under
// -race (hundreds of milliseconds at worst) replaces healthy connections, and
// makes Start fail when it happens before the first subscription is done.
const probeInterval = 500 * time.Millisecond

// TestProbeReplacesDeafConnection freezes the subscriber's pub/sub
// connection (a proxy stops forwarding on it without closing it, as a
// broken network path would): the probe notices within a couple of
// intervals, well before rueidis's own keepalive would, the broker
// reconnects and delivers what was published meanwhile from history.
func TestProbeReplacesDeafConnection(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	proxy := testproxy.New(t, srv.Addr())
	cfg := fastReconnect(newPrefix())
	cfg.ProbeInterval = probeInterval
	cfg.URL = "redis://" + proxy.Addr() + "/0"
	rec := brokertest.NewRecorder()
	sub := newBrokerAt(t, cfg)
	before := proxy.Accepted()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := sub.Start(ctx, rec); err != nil {
		t.Fatal(err)
	}
	pub := startBroker(t, srv, Config{Prefix: cfg.Prefix}, brokertest.Discard{})
	mustSubscribe(t, sub, "a")
	epoch := mustPublish(t, pub, "a", "1").Epoch
	rec.Wait(t, "a", 1)

	proxy.Freeze(before) // the connections Start opened: the pub/sub one
	begin := time.Now()
	mustPublish(t, pub, "a", "2")
	mustPublish(t, pub, "a", "3")
	brokertest.WaitFor(t, "the probe to fail", func() bool { return sub.ProbeFailures() > 0 })
	brokertest.WaitFor(t, "the subscriber to be ready", sub.Ready)
	checkOffsets(t, "after a deaf connection", rec.Wait(t, "a", 3), epoch)
	t.Logf("deaf connection replaced and filled in %v", time.Since(begin))
	mustPublish(t, pub, "a", "4")
	checkOffsets(t, "live again", rec.Wait(t, "a", 4), epoch)
}

// TestPubSubConnectionKilled kills the pub/sub connections from Redis
// (CLIENT KILL TYPE pubsub): the broker reconnects and delivers what was
// published meanwhile.
func TestPubSubConnectionKilled(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	cfg := fastReconnect(newPrefix())
	rec := brokertest.NewRecorder()
	sub := startBroker(t, srv, cfg, rec)
	pub := startBroker(t, srv, cfg, brokertest.Discard{})
	mustSubscribe(t, sub, "a")
	epoch := mustPublish(t, pub, "a", "1").Epoch
	rec.Wait(t, "a", 1)
	for i := 2; i <= 4; i++ {
		if n, err := srv.Do(t.Context(), "CLIENT", "KILL", "TYPE", "pubsub"); err != nil || n == "0" {
			t.Fatalf("CLIENT KILL TYPE pubsub: %s, %v", n, err)
		}
		publishEventually(t, pub, "a", fmt.Sprint(i))
		// Ready only once the subscriber noticed this kill and came back.
		brokertest.WaitFor(t, "the subscriber to be back", func() bool { return sub.Reconnects() == uint64(i-1) && sub.Ready() })
	}
	checkOffsets(t, "after kills", rec.Wait(t, "a", 4), epoch)
	mustPublish(t, pub, "a", "5")
	checkOffsets(t, "live again", rec.Wait(t, "a", 5), epoch)
}

// TestRewindStartsNewEpoch: when Redis comes back with a channel's stream
// behind what the subscriber delivered (writes lost in a failover to a
// lagging replica, simulated by winding the offset back), the broker
// starts a new epoch instead of dropping the offsets given out again as
// duplicates, so that the node's subscriptions see the change.
func TestRewindStartsNewEpoch(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	cfg := fastReconnect(newPrefix())
	rec := brokertest.NewRecorder()
	sub := startBroker(t, srv, cfg, rec)
	pub := startBroker(t, srv, cfg, brokertest.Discard{})
	mustSubscribe(t, sub, "a")
	epoch := mustPublish(t, pub, "a", "1").Epoch
	mustPublish(t, pub, "a", "2")
	mustPublish(t, pub, "a", "3")
	checkOffsets(t, "before", rec.Wait(t, "a", 3), epoch)

	// Publications 2 and 3 are "lost": Redis is back at offset 1.
	tag := cfg.Prefix + ":{a}"
	for _, cmd := range [][]string{{"HSET", tag + ":m", "o", "1"}, {"XDEL", tag + ":s", "2-0", "3-0"}, {"CLIENT", "KILL", "TYPE", "pubsub"}} {
		if _, err := srv.Do(t.Context(), cmd...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	brokertest.WaitFor(t, "the rewind to be noticed", func() bool { return sub.Rewinds() == 1 })
	pos := mustPublish(t, pub, "a", "4")
	if pos.Epoch == epoch {
		t.Fatalf("publication after the rewind is in the old epoch %s at %d", epoch, pos.Offset)
	}
	events := rec.Wait(t, "a", 4)
	if last := events[3]; last.Pos != pos {
		t.Fatalf("the subscriber got %+v, want the publication at %+v", last.Pos, pos)
	}
}
