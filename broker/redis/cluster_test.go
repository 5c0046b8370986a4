package redis

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

func TestSlotOf(t *testing.T) {
	if got := crc16("123456789"); got != 0x31c3 {
		t.Errorf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	node := c.Nodes()[0]
	for _, key := range []string{"foo", "p:{chat:room}", "p:{chat:room}:s", "{}x", "a{}{b}", "a{{b}}c", "x{y", "x}y{", "é"} {
		want, err := node.Do(t.Context(), "CLUSTER", "KEYSLOT", key)
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(int(slotOf(key))); got != want {
			t.Errorf("slotOf(%q) = %s, Redis says %s", key, got, want)
		}
	}
}

// clusterChannels returns n channel names whose slots are spread over
// every master of the broker's cluster topology, and fails unless they
// are.
func clusterChannels(t *testing.T, b *Broker, n int) []string {
	t.Helper()
	chans := make([]string, n)
	owners := map[string]bool{}
	b.subs.mu.Lock()
	topo := b.subs.topo
	b.subs.mu.Unlock()
	for i := range chans {
		chans[i] = fmt.Sprintf("room:%d", i)
		addr, ok := topo.master(b.tag(chans[i]))
		if !ok {
			t.Fatalf("no master for %s", chans[i])
		}
		owners[addr] = true
	}
	if len(owners) != len(topo.masters) || len(owners) < 3 {
		t.Fatalf("%d channels on %d of %d masters %v", n, len(owners), len(topo.masters), topo.masters)
	}
	return chans
}

func TestClusterConformance(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	brokertest.Run(t, func(t *testing.T) broker.Broker { return newBrokerAt(t, Config{URL: c.URL()}) })
	brokertest.RunPresence(t, func(t *testing.T) broker.PresenceManager { return newBrokerAt(t, Config{URL: c.URL()}) })
}

// TestClusterNodesShareChannels runs two brokers on a 3-master Cluster with
// channels on every shard: each broker receives every publication of both,
// in order, through sharded pub/sub, and presence added on one is listed on
// the other.
func TestClusterNodesShareChannels(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	cfg := Config{URL: c.URL(), Prefix: newPrefix()}
	recs := []*brokertest.Recorder{brokertest.NewRecorder(), brokertest.NewRecorder()}
	nodes := []*Broker{startBrokerAt(t, cfg, recs[0]), startBrokerAt(t, cfg, recs[1])}
	if !nodes[0].sharded {
		t.Fatal("the broker did not detect the Cluster")
	}
	chans := clusterChannels(t, nodes[0], 30)
	for _, b := range nodes {
		mustSubscribe(t, b, chans...)
	}
	const each = 20
	var wg sync.WaitGroup
	for _, b := range nodes {
		wg.Go(func() {
			for i := range each {
				for _, ch := range chans {
					if _, err := b.Publish(t.Context(), ch, fmt.Appendf(nil, "%d", i), broker.PublishOptions{HistorySize: 100}); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for i, rec := range recs {
		for _, ch := range chans {
			events := rec.Wait(t, ch, 2*each)
			checkOffsets(t, fmt.Sprintf("node %d, %s", i, ch), events, events[0].Pos.Epoch)
		}
	}
	if err := nodes[0].PublishJoin(t.Context(), chans[1], clientInfo("c1")); err != nil {
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the join on the other node", func() bool {
		for _, e := range recs[1].Events(chans[1]) {
			if e.Kind == "join" && e.Info.Client == "c1" {
				return true
			}
		}
		return false
	})
	for i, ch := range chans {
		if err := nodes[0].AddPresence(t.Context(), ch, clientInfo("c"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range chans {
		infos, err := nodes[1].Presence(t.Context(), ch)
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != 1 || infos[0].Client != "c"+strconv.Itoa(i) {
			t.Fatalf("presence of %s on the other node: %v", ch, infos)
		}
	}
	// Channels lists the channels of every shard (and no probe channel).
	listed, err := nodes[1].Channels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		if !slices.Contains(listed, ch) {
			t.Errorf("Channels() = %v lacks %s", listed, ch)
		}
	}
	// Every master carries the publications of its own channels only.
	for _, m := range c.Masters() {
		if n := infoField(t, m, "stats", "pubsubshard_channels"); n == "0" {
			t.Errorf("master %s has no shard channels", m.Addr())
		}
	}
}

// TestClusterFailover fails over the master of some channels while two
// brokers use them: once the replica took over, the subscriber is ready
// again and receives every publication, before and after, in order and
// without a gap (a manual failover loses no write). Then that master is
// killed: the cluster promotes its replica by itself, and publications are
// delivered again, in order; what an asynchronous replica lost shows as a
// gap or a new epoch, as after any outage.
func TestClusterFailover(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{Replicas: 1})
	cfg := fastReconnect(newPrefix())
	cfg.URL = c.URL()
	rec := brokertest.NewRecorder()
	sub := startBrokerAt(t, cfg, rec)
	pub := startBrokerAt(t, cfg, nopHandler{})
	chans := clusterChannels(t, sub, 12)
	mustSubscribe(t, sub, chans...)
	publishAll := func(data string) {
		t.Helper()
		for _, ch := range chans {
			publishEventually(t, pub, ch, data)
		}
	}
	publishAll("1")
	publishAll("2")
	epochs := map[string]string{}
	for _, ch := range chans {
		epochs[ch] = rec.Wait(t, ch, 2)[0].Pos.Epoch
	}

	owner := masterOf(t, c, sub, chans[0])
	promoted := c.Failover(owner)
	brokertest.WaitFor(t, "the subscriber to move to the new master", func() bool {
		return sub.Ready() && linkAddr(sub, chans[0]) == promoted.Addr()
	})
	publishAll("3")
	publishAll("4")
	for _, ch := range chans {
		checkOffsets(t, ch+" after a failover", rec.Wait(t, ch, 4), epochs[ch])
	}

	promoted.Kill()
	c.WaitHealthy()
	brokertest.WaitFor(t, "the subscriber to be ready after a master died", sub.Ready)
	publishAll("5")
	for _, ch := range chans {
		events := rec.Events(ch)
		brokertest.WaitFor(t, "the last publication of "+ch, func() bool {
			events = rec.Events(ch)
			return len(events) > 0 && string(events[len(events)-1].Pub.Data) == "5"
		})
		checkOrdered(t, ch, events)
	}
	if promoted := c.Masters(); len(promoted) != 3 {
		t.Fatalf("%d masters after the kill, want 3", len(promoted))
	}
}

// linkAddr returns the address of the master a channel is subscribed on.
func linkAddr(b *Broker, ch string) string {
	b.subs.mu.Lock()
	defer b.subs.mu.Unlock()
	if l := b.subs.on[ch]; l != nil {
		return l.addr
	}
	return ""
}

// masterOf returns the node that owns ch as master.
func masterOf(t *testing.T, c *testredis.Cluster, b *Broker, ch string) *testredis.Server {
	t.Helper()
	b.subs.mu.Lock()
	addr, _ := b.subs.topo.master(b.tag(ch))
	b.subs.mu.Unlock()
	for _, m := range c.Masters() {
		if m.Addr() == addr {
			return m
		}
	}
	t.Fatalf("no master at %s", addr)
	return nil
}

// checkOrdered fails t unless events are publications in increasing
// positions: offsets rising within an epoch (a gap is allowed: the node's
// subscriptions report it), each epoch after the other.
func checkOrdered(t *testing.T, what string, events []brokertest.Event) {
	t.Helper()
	var last protocol.StreamPosition
	for i, e := range events {
		if e.Kind != "pub" {
			continue
		}
		if i > 0 && e.Pos.Epoch == last.Epoch && e.Pos.Offset <= last.Offset {
			t.Fatalf("%s: event %d at %+v after %+v", what, i, e.Pos, last)
		}
		last = e.Pos
	}
}

// TestClusterPublishMany is TestPublishMany with channels on every shard.
func TestClusterPublishMany(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	b := startBrokerAt(t, Config{URL: c.URL(), Prefix: newPrefix()}, nopHandler{})
	testPublishMany(t, Config{URL: c.URL()}, clusterChannels(t, b, 6))
}
