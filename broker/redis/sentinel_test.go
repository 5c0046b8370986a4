package redis

import (
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
)

// TestSentinelFailover runs two brokers on a master watched by sentinels
// (the URL names the sentinels and the master set) and fails the master
// over: the brokers follow the new master (the subscriber's pub/sub
// connection to the old one stays open, so only the probe notices), publish
// and deliver again, and the subscriber gets every publication in order,
// those after the failover in a new epoch (see termLua).
func TestSentinelFailover(t *testing.T) {
	st := testredis.StartSentinel(t, testredis.SentinelOptions{})
	cfg := fastReconnect(newPrefix())
	cfg.URL = st.URL()
	rec := brokertest.NewRecorder()
	sub := startBrokerAt(t, cfg, rec)
	pub := startBrokerAt(t, cfg, brokertest.Discard{})
	if sub.sharded {
		t.Fatal("a Sentinel setup taken for a Cluster")
	}
	mustSubscribe(t, sub, "a", "b")
	first := mustPublish(t, pub, "a", "1")
	mustPublish(t, pub, "b", "1")
	rec.Wait(t, "a", 1)

	// Sentinel fails over without waiting for the replica: let it catch
	// up first, so that nothing is lost and delivery must be complete.
	old := st.Master()
	for _, s := range st.Servers() {
		if s == old {
			continue
		}
		brokertest.WaitFor(t, "the replica to have the publications", func() bool {
			a, _ := s.Do(t.Context(), "HGET", cfg.Prefix+":{a}:m", "o")
			b, _ := s.Do(t.Context(), "HGET", cfg.Prefix+":{b}:m", "o")
			return a == "1" && b == "1"
		})
	}
	master := st.Failover()
	if master == old {
		t.Fatal("no failover")
	}
	publishEventually(t, pub, "a", "2")
	publishEventually(t, pub, "b", "2")
	brokertest.WaitFor(t, "the subscriber to be ready", sub.Ready)
	for _, ch := range []string{"a", "b"} {
		brokertest.WaitFor(t, "the publication after the failover on "+ch, func() bool {
			events := rec.Events(ch)
			return len(events) > 0 && string(events[len(events)-1].Pub.Data) == "2"
		})
		checkOrdered(t, ch, rec.Events(ch))
	}
	checkRenewed(t, "a", rec.Events("a"), first.Epoch, 1)
	if sub.ProbeFailures() == 0 {
		t.Error("the probe did not notice that the pub/sub connection was on the old master")
	}
	// New subscriptions work on the new master, and history is there.
	mustSubscribe(t, sub, "c")
	mustPublish(t, pub, "c", "1")
	rec.Wait(t, "c", 1)
	res, err := pub.History(t.Context(), "a", broker.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position.Offset == 0 {
		t.Fatalf("no history of a after the failover: %+v", res.Position)
	}
}
