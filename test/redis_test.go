package test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// redisNode is one redcast node on Redis, serving on a random local port.
type redisNode struct {
	base string // ws://127.0.0.1:PORT
	http string // http://127.0.0.1:PORT
	srv  *server.Server
}

// startRedisNodes starts n nodes sharing the Redis at url under one prefix
// of the test's own.
func startRedisNodes(t *testing.T, url string, n int) []*redisNode {
	t.Helper()
	return startRedisNodesWith(t, url, n, server.Config{})
}

// startRedisNodesWith is startRedisNodes with the other settings of cfg.
func startRedisNodesWith(t *testing.T, url string, n int, cfg server.Config) []*redisNode {
	t.Helper()
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	nodes := make([]*redisNode, n)
	for i := range nodes {
		rb, err := redis.New(testContext(t), redis.Config{URL: url, Prefix: prefix, PresenceTTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Broker, cfg.Presence = rb, rb
		addr, srv := testserver.Start(t, cfg)
		nodes[i] = &redisNode{base: "ws://" + addr, http: "http://" + addr, srv: srv}
	}
	return nodes
}

// onEachBroker runs check as two subtests: against a node with the memory
// broker, and against a node on a Redis of its own, both configured by cfg.
func onEachBroker(t *testing.T, cfg redcast.Config, check func(t *testing.T, base string)) {
	t.Run("memory", func(t *testing.T) {
		base, _ := startServer(t, cfg)
		check(t, base)
	})
	t.Run("redis", func(t *testing.T) {
		rs := testredis.Start(t, testredis.Options{})
		check(t, startRedisNodesWith(t, rs.URL(), 1, server.Config{Node: cfg})[0].base)
	})
}

func (n *redisNode) ready(t *testing.T) bool {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(n.http + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// dataOf returns the data of publications as strings, in order.
func dataOf(pubs []protocol.Publication) []string {
	out := make([]string, len(pubs))
	for i, p := range pubs {
		out[i] = string(p.Data)
	}
	return out
}

// TestRedisNodesShareChannels runs three nodes on one Redis: publications
// made on two nodes reach full-protocol subscribers on every node and a
// plain client, all in the same order with consecutive offsets.
func TestRedisNodesShareChannels(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodes(t, rs.URL(), 3)
	ctx := testContext(t)
	const ch = "chat:multi"
	subs := make([]*conn, len(nodes))
	for i, n := range nodes {
		subs[i] = dial(t, n.base, fmt.Sprintf("sub%d", i))
		if _, err := subs[i].Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	plain := dialPlain(t, nodes[2].base, "multi", "name=plain")
	// The plain client's subscription is confirmed once it shows in presence.
	waitFor(t, "plain client in presence", func() bool {
		cl, err := subs[0].Presence(ctx, ch)
		return err == nil && slices.ContainsFunc(cl, func(ci protocol.ClientInfo) bool { return infoName(ci) == "plain" })
	})

	const perPublisher = 100
	var wg sync.WaitGroup
	for p := range 2 {
		pub := dial(t, nodes[p].base, fmt.Sprintf("pub%d", p))
		wg.Go(func() {
			for i := range perPublisher {
				if _, err := pub.Publish(ctx, ch, map[string]string{"text": fmt.Sprintf("p%d-%d", p, i)}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	var first []string
	for i, s := range subs {
		pubs := s.waitPubs(t, ch, 2*perPublisher)
		checkOffsets(t, fmt.Sprintf("subscriber on node %d", i), pubs, 1)
		if i == 0 {
			first = dataOf(pubs)
		} else if !slices.Equal(first, dataOf(pubs)) {
			t.Errorf("node %d delivered another order than node 0", i)
		}
	}
	for i, want := range first {
		got := plain.readText()
		if !strings.Contains(want, `"`+got+`"`) {
			t.Fatalf("plain client message %d = %q, want the text of %s", i, got, want)
		}
	}
	// History is the same whichever node is asked.
	for i, s := range subs {
		h, err := s.History(ctx, ch, client.HistoryOptions{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dataOf(h.Publications), first[len(first)-10:]) {
			t.Errorf("history on node %d differs", i)
		}
	}
}

// TestRedisRecoveryOnAnotherNode: a client whose node goes away reconnects
// to another node and recovers everything published meanwhile, with no gap
// and no duplicate.
func TestRedisRecoveryOnAnotherNode(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodes(t, rs.URL(), 3)
	ctx := testContext(t)
	const ch = "chat:failover"
	pub := dial(t, nodes[2].base, "pub")
	publishN(t, pub, ch, 5)

	a := dial(t, nodes[0].base, "a")
	res, err := a.Subscribe(ctx, ch, client.SubscribeOptions{History: 5})
	if err != nil {
		t.Fatal(err)
	}
	pos := protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
	// Node 0 goes away: its clients are told to reconnect.
	sctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	if err := nodes[0].srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, a)
	wantDisconnect(t, "client of the stopped node", a.Err(), protocol.DisconnectShutdown.Code)

	publishN(t, pub, ch, 20)
	a2 := dial(t, nodes[1].base, "a")
	res, err = a2.Subscribe(ctx, ch, client.SubscribeOptions{Since: &pos})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered || len(res.Publications) != 20 {
		t.Fatalf("recovered=%v with %d publications, want true with 20", res.Recovered, len(res.Publications))
	}
	checkOffsets(t, "recovered", res.Publications, pos.Offset+1)
	publishN(t, pub, ch, 3)
	live := a2.waitPubs(t, ch, 3)
	checkOffsets(t, "live after recovery", live, res.Offset+1)
}

// TestRedisPresenceAcrossNodes: presence and join/leave are the same from
// every node.
func TestRedisPresenceAcrossNodes(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodes(t, rs.URL(), 3)
	ctx := testContext(t)
	const ch = "chat:who"
	watcher := dial(t, nodes[2].base, "watcher")
	if _, err := watcher.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	alice := dial(t, nodes[0].base, "alice")
	bob := dial(t, nodes[1].base, "bob")
	for _, c := range []*conn{alice, bob} {
		if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	watcher.waitPush(t, protocol.PushJoin, ch, alice.ID())
	watcher.waitPush(t, protocol.PushJoin, ch, bob.ID())
	for _, c := range []*conn{alice, bob, watcher} {
		waitPresence(t, c, ch, "alice", "bob", "watcher")
	}
	// Presence outlives its TTL (3s here) while the clients stay: the
	// nodes refresh it.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		waitPresence(t, watcher, ch, "alice", "bob", "watcher")
	}
	bob.Close()
	watcher.waitPush(t, protocol.PushLeave, ch, bob.ID())
	waitPresence(t, alice, ch, "alice", "watcher")
}

// TestRedisOutage: while Redis is down a node keeps its clients, answers
// publishes with error 112 at once and is not ready; once Redis is back the
// node resubscribes and its subscribers get what is published on other
// nodes, without a gap.
func TestRedisOutage(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{AppendOnly: true})
	nodes := startRedisNodes(t, rs.URL(), 2)
	ctx := testContext(t)
	const ch = "chat:outage"
	a := dial(t, nodes[0].base, "a")
	if _, err := a.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	b := dial(t, nodes[1].base, "b")
	publishN(t, b, ch, 3)
	a.waitPubs(t, ch, 3)

	rs.Kill()
	waitFor(t, "node 0 not ready while Redis is down", func() bool { return !nodes[0].ready(t) })
	start := time.Now()
	_, err := b.Publish(ctx, ch, map[string]string{"text": "lost"})
	wantError(t, "publish while Redis is down", err, protocol.ErrBrokerUnavailable)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("publish took %v to fail; it must fail fast", took)
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("client of a node without Redis lost its connection: %v", err)
	}

	rs.Restart()
	waitFor(t, "both nodes ready after Redis is back", func() bool { return nodes[0].ready(t) && nodes[1].ready(t) })
	publishN(t, b, ch, 10)
	pubs := a.waitPubs(t, ch, 13)
	checkOffsets(t, "publications around the outage", pubs, 1)
}

// TestRedisEpochChangeIsExplicit: Redis restarted without persistence loses
// history; a client recovering across it is told it cannot recover.
func TestRedisEpochChangeIsExplicit(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodes(t, rs.URL(), 1)
	ctx := testContext(t)
	const ch = "chat:epoch"
	c := dial(t, nodes[0].base, "c")
	if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	publishN(t, c, ch, 3)
	h, err := c.History(ctx, ch, client.HistoryOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	rs.Restart()
	waitFor(t, "node ready after Redis restart", func() bool { return nodes[0].ready(t) })
	// The live subscriber sees the stream start again in a new epoch: it
	// is told to reconnect and recover, not fed offsets it cannot place.
	p := dial(t, nodes[0].base, "p")
	publishN(t, p, ch, 1)
	waitClosed(t, c)
	wantDisconnect(t, "live subscriber across lost history", c.Err(), protocol.DisconnectInsufficientState.Code)
	c2 := dial(t, nodes[0].base, "c2")
	res, err := c2.Subscribe(ctx, ch, client.SubscribeOptions{Since: &protocol.StreamPosition{Offset: h.Offset, Epoch: h.Epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered || res.Epoch == h.Epoch {
		t.Fatalf("after losing history: recovered=%v epoch %q (was %q); want recovered false and a new epoch", res.Recovered, res.Epoch, h.Epoch)
	}
}

// waitClosed waits until the server closed c's connection.
func waitClosed(t *testing.T, c *conn) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("the connection was not closed")
	}
}

// TestRedisPublishesOfOneFrame sends many publishes to several channels in
// one frame, with an invalid one and a presence command among them, to a
// node on Redis (which publishes a frame's publishes in one pipeline):
// the replies come in command order, each publish acknowledged with the
// next offset of its channel, the invalid one refused, and subscribers get
// everything in order.
func TestRedisPublishesOfOneFrame(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodes(t, rs.URL(), 2)
	ctx := testContext(t)
	sub := dial(t, nodes[1].base, "sub")
	for _, ch := range []string{"chat:f1", "chat:f2"} {
		if _, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := dialRawConnected(t, nodes[0].base, "pub")
	type want struct {
		id     uint32
		ch     string
		offset uint64
		code   uint32
	}
	var lines []string
	var wants []want
	next := map[string]uint64{}
	for i := range 40 {
		ch := []string{"chat:f1", "chat:f2"}[i%2]
		switch i {
		case 7:
			id, line := raw.command(protocol.MethodPublish, protocol.PublishParams{Channel: "nons:x", Data: []byte(`1`)})
			lines, wants = append(lines, line), append(wants, want{id: id, code: protocol.ErrUnknownNamespace.Code})
		case 21:
			id, line := raw.command(protocol.MethodPresence, protocol.ChannelParams{Channel: "chat:f1"})
			lines, wants = append(lines, line), append(wants, want{id: id})
		}
		next[ch]++
		id, line := raw.command(protocol.MethodPublish, protocol.PublishParams{Channel: ch, Data: fmt.Appendf(nil, `{"i":%d}`, i)})
		lines, wants = append(lines, line), append(wants, want{id: id, ch: ch, offset: next[ch]})
	}
	raw.send(lines...)
	for _, w := range wants {
		m, err := raw.next()
		for err == nil && m.IsPush() {
			m, err = raw.next()
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != w.id {
			t.Fatalf("reply to command %d came when the reply to %d was due", m.ID, w.id)
		}
		switch {
		case w.code != 0:
			if m.Error == nil || m.Error.Code != w.code {
				t.Fatalf("reply %d: %s %+v, want error %d", m.ID, m.Result, m.Error, w.code)
			}
		case w.ch != "":
			var pos protocol.StreamPosition
			decodeResult(t, m.Reply, &pos)
			if pos.Offset != w.offset {
				t.Fatalf("publish %d to %s acknowledged at offset %d, want %d", m.ID, w.ch, pos.Offset, w.offset)
			}
		case m.Error != nil:
			t.Fatalf("presence reply: %+v", m.Error)
		}
	}
	checkOffsets(t, "chat:f1", sub.waitPubs(t, "chat:f1", 20), 1)
	checkOffsets(t, "chat:f2", sub.waitPubs(t, "chat:f2", 20), 1)
}

// TestRedisPublishesOfQueuedFrames writes many frames of publishes in one
// write, as a client does whose frames queue up while the server waits for
// Redis: the node publishes frames that are already there together, and
// the replies still come in command order with each channel's next offset,
// an invalid publish and a presence command among them answered in their
// place. A frame the reader refuses after them (invalid UTF-8) closes the
// connection, but the publishes before it, received whole, are published.
func TestRedisPublishesOfQueuedFrames(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	nodes := startRedisNodes(t, rs.URL(), 2)
	ctx := testContext(t)
	sub := dial(t, nodes[1].base, "sub")
	chans := []string{"chat:q1", "chat:q2"}
	for _, ch := range chans {
		if _, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := dialRawConnected(t, nodes[0].base, "pub")
	// frames writes one frame per line (masked, as a client must), all in
	// one write.
	frames := func(lines []string, extra ...[]byte) {
		var b []byte
		for _, l := range lines {
			b = wsframe.AppendClientFrame(b, ws.OpText, []byte(l))
		}
		for _, e := range extra {
			b = append(b, e...)
		}
		if _, err := raw.nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	var (
		lines   []string
		ids     []uint32
		offsets []uint64 // 0: an error reply is due; 1<<63: the presence reply
	)
	next := map[string]uint64{}
	for i := range 30 {
		ch := chans[i%2]
		switch i {
		case 9:
			id, line := raw.command(protocol.MethodPublish, protocol.PublishParams{Channel: "nons:x", Data: []byte(`1`)})
			lines, ids, offsets = append(lines, line), append(ids, id), append(offsets, 0)
		case 17:
			id, line := raw.command(protocol.MethodPresence, protocol.ChannelParams{Channel: ch})
			lines, ids, offsets = append(lines, line), append(ids, id), append(offsets, 1<<63)
		}
		next[ch]++
		id, line := raw.command(protocol.MethodPublish, protocol.PublishParams{Channel: ch, Data: fmt.Appendf(nil, `{"i":%d}`, i)})
		lines, ids, offsets = append(lines, line), append(ids, id), append(offsets, next[ch])
	}
	frames(lines)
	for i, id := range ids {
		m := raw.reply(id) // fails unless the next reply is id's: command order
		switch offsets[i] {
		case 0:
			if m.Error == nil || m.Error.Code != protocol.ErrUnknownNamespace.Code {
				t.Fatalf("reply %d: %s %+v, want error %d", id, m.Result, m.Error, protocol.ErrUnknownNamespace.Code)
			}
		case 1 << 63:
			if m.Error != nil {
				t.Fatalf("presence reply: %+v", m.Error)
			}
		default:
			var pos protocol.StreamPosition
			decodeResult(t, m, &pos)
			if pos.Offset != offsets[i] {
				t.Fatalf("publish %d acknowledged at offset %d, want %d", id, pos.Offset, offsets[i])
			}
		}
	}
	checkOffsets(t, chans[0], sub.waitPubs(t, chans[0], 15), 1)
	checkOffsets(t, chans[1], sub.waitPubs(t, chans[1], 15), 1)

	// Ten more publishes, then a frame that is not UTF-8: the publishes
	// are answered before the disconnect.
	lines, ids = lines[:0], ids[:0]
	for i := range 10 {
		id, line := raw.command(protocol.MethodPublish, protocol.PublishParams{Channel: chans[i%2], Data: fmt.Appendf(nil, `{"i":%d}`, 30+i)})
		lines, ids = append(lines, line), append(ids, id)
	}
	bad := wsframe.AppendClientFrame(nil, ws.OpText, []byte{0xff, 0xfe})
	frames(lines, bad)
	for i, id := range ids {
		var pos protocol.StreamPosition
		decodeResult(t, raw.reply(id), &pos)
		if want := uint64(16 + i/2); pos.Offset != want {
			t.Fatalf("publish %d of the last frames acknowledged at offset %d, want %d", i, pos.Offset, want)
		}
	}
	raw.expectDisconnect(protocol.DisconnectBadFrame.Code)
	checkOffsets(t, chans[0], sub.waitPubs(t, chans[0], 20), 1)
	checkOffsets(t, chans[1], sub.waitPubs(t, chans[1], 20), 1)
}
