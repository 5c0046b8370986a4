package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

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
	brokertest.RunRevocations(t, func(t *testing.T) broker.RevocationStore { return newBrokerAt(t, Config{URL: c.URL()}) })
	brokertest.RunPresenceExpiry(t, func(t *testing.T, ttl time.Duration) (a, b broker.PresenceExpirer) {
		cfg := Config{URL: c.URL(), Prefix: newPrefix(), PresenceTTL: ttl}
		return newBrokerAt(t, cfg), newBrokerAt(t, cfg)
	})
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
		if _, err := nodes[0].AddPresence(t.Context(), ch, clientInfo("c"+strconv.Itoa(i))); err != nil {
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
// without a gap (a manual failover loses no write), its channels on that
// master in a new epoch (the broker cannot tell a failover that lost
// nothing from one that did). Then that master is killed: the cluster
// promotes its replica by itself, and publications are delivered again,
// in order; what an asynchronous replica lost shows as a gap or a new
// epoch, as after any outage.
func TestClusterFailover(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{Replicas: 1})
	cfg := fastReconnect(newPrefix())
	cfg.URL = c.URL()
	rec := brokertest.NewRecorder()
	sub := startBrokerAt(t, cfg, rec)
	pub := startBrokerAt(t, cfg, brokertest.Discard{})
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
	renewed := 0
	for _, ch := range chans {
		if masterOf(t, c, sub, ch) == promoted {
			checkRenewed(t, ch+" after a failover", rec.Wait(t, ch, 4), epochs[ch], 2)
			renewed++
		} else {
			checkOffsets(t, ch+" after a failover of another master", rec.Wait(t, ch, 4), epochs[ch])
		}
	}
	if renewed == 0 || sub.Rewinds()+pub.Rewinds() != uint64(renewed) {
		t.Fatalf("%d channels on the failed-over master, %d+%d epochs renewed", renewed, sub.Rewinds(), pub.Rewinds())
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
// Then one master loses its scripts (as a replica without them that took
// over would): a batch over every shard, answered NOSCRIPT there and run
// elsewhere, still publishes everything, in order, and the master has the
// scripts again.
func TestClusterPublishMany(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	b := startBrokerAt(t, Config{URL: c.URL(), Prefix: newPrefix()}, brokertest.Discard{})
	chans := clusterChannels(t, b, 6)
	testPublishMany(t, Config{URL: c.URL()}, chans)

	m := masterOf(t, c, b, chans[0])
	if _, err := m.Do(t.Context(), "SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	var reqs []broker.PublishRequest
	for i := range 2 * len(chans) {
		reqs = append(reqs, broker.PublishRequest{Channel: chans[i%len(chans)], Data: []byte("1"), Options: broker.PublishOptions{HistorySize: 10}})
	}
	for i, r := range b.PublishMany(t.Context(), reqs) {
		if want := uint64(i/len(chans) + 1); r.Err != nil || r.Position.Offset != want {
			t.Fatalf("publish %d to %s after SCRIPT FLUSH on its master: %+v, want offset %d", i, reqs[i].Channel, r, want)
		}
	}
	if got, err := m.DoList(t.Context(), "SCRIPT", "EXISTS", publishSHA); err != nil || len(got) != 1 || got[0] != "1" {
		t.Fatalf("SCRIPT EXISTS on the flushed master: %v %v", got, err)
	}
}

// TestClusterSlotMigration moves the slots of some channels to other
// masters, step by step as redis-cli --cluster reshard does, while a
// broker publishes on every channel without pause and another is
// subscribed: the subscriber receives every publication, acknowledged or
// not, once and in order, in the channel's first epoch; each moved channel
// ends up subscribed on its new master; and the subscriber stays ready
// throughout, without reconnecting.
func TestClusterSlotMigration(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	cfg := fastReconnect(newPrefix())
	cfg.URL = c.URL()
	rec := brokertest.NewRecorder()
	sub := startBrokerAt(t, cfg, rec)
	pub := startBrokerAt(t, cfg, brokertest.Discard{})
	chans := clusterChannels(t, sub, 9)
	// Two slots move: that of a channel chA, which a second channel
	// shares, from its master to another, then that of a channel chB of a
	// third master. Neither carries a probe channel: moving one costs a
	// probe failure and a reconnection (the broker does not move its
	// probe channels yet).
	probes := probeSlots(sub, pub)
	var chA, chB string
	for _, ch := range chans {
		if !probes[slotOf(sub.tag(ch))] {
			chA = ch
			break
		}
	}
	slotA := int(slotOf(sub.tag(chA)))
	chA2 := sameSlot(chA, len(chans))
	chans = append(chans, chA2)
	fromA := c.SlotOwner(slotA)
	for _, ch := range chans {
		slot := int(slotOf(sub.tag(ch)))
		if c.SlotOwner(slot) != fromA && !probes[uint16(slot)] {
			chB = ch
			break
		}
	}
	slotB := int(slotOf(sub.tag(chB)))
	fromB := c.SlotOwner(slotB)
	var toA *testredis.Server
	for _, m := range c.Masters() {
		if m != fromA && m != fromB {
			toA = m
		}
	}
	moves := []struct {
		slot  int
		to    *testredis.Server
		chans []string
	}{
		{slotA, toA, []string{chA, chA2}},
		{slotB, fromA, []string{chB}},
	}
	mustSubscribe(t, sub, chans...)

	// The publisher goes round the channels until stopped, moving on
	// after an error (a retry comes with the next round).
	var (
		mu      sync.Mutex
		acked   = map[string]map[uint64]string{} // channel -> offset -> data
		failed  = map[string]int{}               // channel -> failed publications
		errs    = map[string]int{}               // error -> count
		unready int                              // times a broker was seen not ready
		stopped = make(chan struct{})
	)
	for _, ch := range chans {
		acked[ch] = map[uint64]string{}
	}
	ctx, stop := context.WithCancel(t.Context())
	go func() {
		defer close(stopped)
		for n := 0; ctx.Err() == nil; n++ {
			ch, data := chans[n%len(chans)], strconv.Itoa(n)
			pos, err := pub.Publish(ctx, ch, []byte(data), broker.PublishOptions{HistorySize: 100000})
			if !sub.Ready() || !pub.Ready() {
				mu.Lock()
				unready++
				mu.Unlock()
			}
			switch {
			case ctx.Err() != nil:
			case err != nil && !errors.Is(err, broker.ErrUnavailable):
				t.Errorf("Publish(%s): %v", ch, err)
				return
			case err != nil:
				mu.Lock()
				failed[ch]++
				errs[err.Error()]++
				mu.Unlock()
			default:
				mu.Lock()
				acked[ch][pos.Offset] = data
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		<-stopped
	})
	// progress waits until the channels (all if none) got a few more
	// acknowledged publications.
	progress := func(what string, only ...string) {
		t.Helper()
		if len(only) == 0 {
			only = chans
		}
		mu.Lock()
		before := map[string]int{}
		for _, ch := range only {
			before[ch] = len(acked[ch])
		}
		mu.Unlock()
		brokertest.WaitFor(t, "publications "+what, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, ch := range only {
				if len(acked[ch]) < before[ch]+3 {
					return false
				}
			}
			return true
		})
	}
	progress("before the migrations")
	epochs := map[string]string{}
	for _, ch := range chans {
		epochs[ch] = rec.Wait(t, ch, 1)[0].Pos.Epoch
	}

	start := time.Now()
	for i, mv := range moves {
		m := c.BeginMigration(mv.slot, mv.to)
		progress(fmt.Sprintf("while slot %d is migrating", mv.slot))
		if i == 0 {
			// With its stream moved ahead of its meta hash, a channel's
			// publications fail (TRYAGAIN) while the others go on.
			ch := mv.chans[0]
			mu.Lock()
			before := failed[ch]
			mu.Unlock()
			m.MoveKey(sub.tag(ch) + ":s")
			brokertest.WaitFor(t, "a publication on "+ch+" to fail", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return failed[ch] > before
			})
			progress("on the other channels", slices.DeleteFunc(slices.Clone(chans), func(c string) bool {
				return slices.Contains(mv.chans, c)
			})...)
		}
		m.MoveKeys()
		progress(fmt.Sprintf("once the keys of slot %d moved", mv.slot))
		m.Finish()
		progress(fmt.Sprintf("after slot %d moved", mv.slot))
		for _, ch := range mv.chans {
			brokertest.WaitFor(t, ch+" to be subscribed on its new master", func() bool {
				return sub.Ready() && linkAddr(sub, ch) == mv.to.Addr() &&
					slices.Contains(shardChannels(t, mv.to), sub.tag(ch)) &&
					!slices.Contains(shardChannels(t, m.From()), sub.tag(ch))
			})
		}
	}
	t.Logf("migrations took %v", time.Since(start))
	// The publisher had no subscription in the moved slots, so nothing
	// told it of the moves: it subscribes there all the same.
	for _, mv := range moves {
		mustSubscribe(t, pub, mv.chans...)
	}
	stop()
	<-stopped

	// A last publication on each channel comes after all the others.
	for _, ch := range chans {
		publishEventually(t, pub, ch, "end")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("failed publications: %v", errs)
	for _, ch := range chans {
		var events []brokertest.Event
		brokertest.WaitFor(t, "the last publication of "+ch, func() bool {
			events = rec.Events(ch)
			return len(events) > 0 && string(events[len(events)-1].Pub.Data) == "end"
		})
		checkOffsets(t, ch, events, epochs[ch])
		for off, data := range acked[ch] {
			if got := string(events[off-1].Pub.Data); got != data {
				t.Fatalf("%s: offset %d delivered %q, acknowledged as %q", ch, off, got, data)
			}
		}
	}
	if unready > 0 {
		t.Errorf("brokers seen not ready %d times", unready)
	}
	for _, b := range []*Broker{sub, pub} {
		if !b.Ready() || b.Reconnects() != 0 || b.ProbeFailures() != 0 {
			t.Errorf("ready %v, %d reconnects, %d probe failures; want ready and none", b.Ready(), b.Reconnects(), b.ProbeFailures())
		}
	}
}

// sameSlot returns a channel room:N (N from n on) whose pub/sub channel
// is in the same Cluster slot as ch's, whatever the prefix.
func sameSlot(ch string, n int) string {
	for ; ; n++ {
		other := "room:" + strconv.Itoa(n)
		if slotOf("{"+other+"}") == slotOf("{"+ch+"}") {
			return other
		}
	}
}

// probeSlots returns the slots of the brokers' probe channels.
func probeSlots(brokers ...*Broker) map[uint16]bool {
	slots := map[uint16]bool{}
	for _, b := range brokers {
		b.subs.mu.Lock()
		for _, l := range b.subs.links {
			slots[slotOf(l.probeName())] = true
		}
		b.subs.mu.Unlock()
	}
	return slots
}

// shardChannels returns the sharded pub/sub channels that have
// subscribers on a node.
func shardChannels(t *testing.T, s *testredis.Server) []string {
	t.Helper()
	chans, err := s.DoList(t.Context(), "PUBSUB", "SHARDCHANNELS")
	if err != nil {
		t.Fatalf("PUBSUB SHARDCHANNELS on %s: %v", s.Addr(), err)
	}
	return chans
}

// TestClusterProbeSlotMigration moves the slot of a link's probe channel
// to another master: the link gets a new probe channel on its own master
// and keeps being probed, without a probe failure, a reconnect or a
// moment of not being ready.
func TestClusterProbeSlotMigration(t *testing.T) {
	c := testredis.StartCluster(t, testredis.ClusterOptions{})
	cfg := Config{URL: c.URL(), Prefix: newPrefix(), ProbeInterval: probeInterval}
	b := startBrokerAt(t, cfg, brokertest.Discard{})
	brokertest.WaitFor(t, "a probe round trip", func() bool { return b.probesBack.Load() > 0 })
	b.subs.mu.Lock()
	var l *link
	for _, each := range b.subs.links {
		l = each
		break
	}
	b.subs.mu.Unlock()
	old := l.probeName()
	slot := int(slotOf(old))
	from := c.SlotOwner(slot)
	var to *testredis.Server
	for _, m := range c.Masters() {
		if m.Addr() != from.Addr() {
			to = m
			break
		}
	}
	c.MigrateSlot(slot, to)
	brokertest.WaitFor(t, "a new probe channel", func() bool { return l.probeName() != old })
	if owner, ok := b.subs.topologyOwner(l.probeName()); !ok || owner != l.addr {
		t.Fatalf("new probe channel %s is on %s, want the link's master %s", l.probeName(), owner, l.addr)
	}
	back := b.probesBack.Load()
	brokertest.WaitFor(t, "probes on the new channel", func() bool { return b.probesBack.Load() >= back+3 })
	if f, r := b.ProbeFailures(), b.Reconnects(); f != 0 || r != 0 || !b.Ready() {
		t.Fatalf("after moving the probe's slot: %d probe failures, %d reconnects, ready %v; want 0, 0, true", f, r, b.Ready())
	}
}

// topologyOwner returns the master that owns a pub/sub channel's slot in
// the topology the broker knows.
func (s *subscriptions) topologyOwner(pubsubChannel string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topo == nil {
		return "", false
	}
	return s.topo.master(pubsubChannel)
}
