package redcast

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
)

// heard records what the listeners of several nodes heard, in order.
type heard struct {
	mu     sync.Mutex
	events []string
}

func (h *heard) listen(n *Node, name string) {
	note := func(s string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, s+"@"+name)
	}
	n.OnLifecycle(Lifecycle{
		Track: func(string) bool { return true },
		Occupancy: func(ch string, occupied bool) {
			note(map[bool]string{true: "occupied", false: "vacated"}[occupied])
		},
		User: func(ch string, entered bool, info *protocol.ClientInfo) {
			note(map[bool]string{true: "+", false: "-"}[entered] + "user")
		},
	})
}

// of returns what was heard, without the node that told it.
func (h *heard) of() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e[:strings.IndexByte(e, '@')])
	}
	return strings.Join(out, " ")
}

// tellers returns which nodes told what was heard.
func (h *heard) tellers() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, e := range h.events {
		out[e[strings.IndexByte(e, '@')+1:]]++
	}
	return out
}

// startRedisNode starts a node on Redis at url whose "room" namespace has
// presence.
func startRedisNode(t *testing.T, url, prefix string, hookAppend func(), hookRead func(int)) *Node {
	t.Helper()
	b, err := redis.New(t.Context(), redis.Config{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Namespaces: map[string]auth.Namespace{"room": {Anonymous: true, Presence: true}}}
	return startNodeWith(t, cfg, Deps{Broker: b, Presence: b}, func(n *Node) {
		n.trans.testHookAppend, n.trans.testHookRead = hookAppend, hookRead
	})
}

// TestTransitionsInOrderAcrossNodes: node A decides that a channel's last
// member left and the channel is vacated; node B then occupies it again
// and its member enters, and B's transitions reach the log before A's.
// The listeners hear them in the order they happened, each once.
func TestTransitionsInOrderAcrossNodes(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	prefix := "order"
	var hold atomic.Bool
	var read atomic.Int64 // entries the reader read, whichever node
	release := make(chan struct{})
	countRead := func(n int) { read.Add(int64(n)) }
	a := startRedisNode(t, srv.URL(), prefix, func() {
		if hold.Load() {
			<-release
		}
	}, countRead)
	b := startRedisNode(t, srv.URL(), prefix, nil, countRead)
	h := &heard{}
	h.listen(a, "A")
	h.listen(b, "B")
	logLen := func() int {
		n, err := srv.Do(t.Context(), "XLEN", prefix+":{!transitions}")
		if err != nil {
			t.Fatal(err)
		}
		var v int
		fmt.Sscan(n, &v)
		return v
	}
	ca := newConnected(t, a, &fakeTransport{})
	if err := ca.Subscribe(protocol.SubscribeParams{Channel: "room:x"}, nil); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "room:x occupied and ann in", func() bool { return h.of() == "occupied +user" })

	hold.Store(true)
	ca.Unsubscribe("room:x") // -user, vacated: held in A
	cb := newConnected(t, b, &fakeTransport{})
	if err := cb.Subscribe(protocol.SubscribeParams{Channel: "room:x"}, nil); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "B's transitions read from the log", func() bool { return logLen() == 4 && read.Load() == 4 })
	close(release)
	want := "occupied +user -user vacated occupied +user"
	wait.For(t, "every transition", func() bool { return len(strings.Fields(h.of())) >= 6 })
	if got := h.of(); got != want {
		t.Fatalf("heard %q, want %q", got, want)
	}
	if tellers := h.tellers(); len(tellers) != 1 {
		t.Errorf("told by %v, want one node", tellers)
	}
}

// TestTransitionsHandedOver: the node that reads the log shuts down: it
// tells the transitions it read before it goes, gives the lease up, and
// the other node reads on from there at once; nothing is told twice or
// lost.
func TestTransitionsHandedOver(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	prefix := "handover"
	nodes := []*Node{startRedisNode(t, srv.URL(), prefix, nil, nil), startRedisNode(t, srv.URL(), prefix, nil, nil)}
	h := &heard{}
	h.listen(nodes[0], "0")
	h.listen(nodes[1], "1")
	var clients []*Client
	for _, n := range nodes {
		c := newConnected(t, n, &fakeTransport{})
		if err := c.Subscribe(protocol.SubscribeParams{Channel: "room:x"}, nil); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	wait.For(t, "room:x occupied and both in", func() bool { return h.of() == "occupied +user +user" })
	r := 0
	if h.tellers()["1"] > 0 {
		r = 1
	}
	clients[r].Closed()
	if err := nodes[r].Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := h.of(); got != "occupied +user +user -user" {
		t.Fatalf("after the reader shut down: %q, want its client's leave told", got)
	}
	clients[1-r].Closed()
	wait.For(t, "room:x vacated", func() bool { return len(strings.Fields(h.of())) >= 6 })
	if got, want := h.of(), "occupied +user +user -user -user vacated"; got != want {
		t.Fatalf("heard %q, want %q", got, want)
	}
	if tellers := h.tellers(); tellers["0"] != 4 && tellers["1"] != 4 {
		t.Fatalf("told by %v, want 4 by the first reader, 2 by the second", tellers)
	}
}

// flakyLog fails its first appends as an unreachable Redis does.
type flakyLog struct {
	transitionLog
	failures int
	appended [][]byte
}

func (l *flakyLog) AppendTransitions(_ context.Context, entries [][]byte) error {
	if l.failures > 0 {
		l.failures--
		return fmt.Errorf("append: %w", broker.ErrUnavailable)
	}
	l.appended = append(l.appended, entries...)
	return nil
}

// TestAppendRetried: an append that meets a moment of unavailability is
// tried again, not lost.
func TestAppendRetried(t *testing.T) {
	n := NewNode(Config{}, Deps{})
	l := &flakyLog{failures: 2}
	n.appendBatch(t.Context(), l, [][]byte{[]byte("t1"), []byte("t2")})
	if len(l.appended) != 2 || n.trans.dropped.Load() != 0 {
		t.Fatalf("appended %q, dropped %d; want both appended", l.appended, n.trans.dropped.Load())
	}
}
