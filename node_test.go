package redcast

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTransport is the outbox.Sink of a test client: it records the
// messages the outbox writes and the end it writes.
type fakeTransport struct {
	countOnly bool // benchmarks: count messages, keep none

	mu     sync.Mutex
	msgs   [][]byte
	closed *protocol.Disconnect
	count  atomic.Int64
}

func (f *fakeTransport) AppendFrames(dst []byte, msgs [][]byte) []byte {
	f.count.Add(int64(len(msgs)))
	if f.countOnly {
		return dst
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		f.msgs = append(f.msgs, slices.Clone(m))
	}
	return dst
}

func (f *fakeTransport) AppendClose(dst []byte, d protocol.Disconnect) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = &d
	return dst
}

func (f *fakeTransport) Write([]byte) error { return nil }
func (f *fakeTransport) Finish(error)       {}

// waitLines waits until the client was sent at least n messages, and
// returns them decoded.
func (f *fakeTransport) waitLines(t *testing.T, n int) []protocol.ServerMessage {
	t.Helper()
	wait.For(t, fmt.Sprintf("%d messages", n), func() bool { return f.count.Load() >= int64(n) })
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]protocol.ServerMessage, 0, len(f.msgs))
	for _, m := range f.msgs {
		var sm protocol.ServerMessage
		if err := json.Unmarshal(m, &sm); err != nil {
			t.Fatalf("bad line %q: %v", m, err)
		}
		out = append(out, sm)
	}
	return out
}

// closedWith returns the disconnect the client was closed with, waiting for
// it.
func (f *fakeTransport) closedWith(t *testing.T) protocol.Disconnect {
	t.Helper()
	var d *protocol.Disconnect
	wait.For(t, "the close", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		d = f.closed
		return d != nil
	})
	return *d
}

func startNode(t testing.TB, cfg Config) *Node { return startNodeWith(t, cfg, Deps{}) }

// startNodeWith starts a node of cfg and deps, calling setup with it
// before it starts; the test shuts it down, failing if the shutdown does.
func startNodeWith(t testing.TB, cfg Config, deps Deps, setup ...func(*Node)) *Node {
	t.Helper()
	n := NewNode(cfg, deps)
	for _, f := range setup {
		f(n)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return n
}

func newConnected(t testing.TB, n *Node, tr *fakeTransport) *Client {
	c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(protocol.ConnectParams{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Closed)
	return c
}

// racingBroker publishes once right after a History read, as if another
// publisher raced the read: the publication reaches the subscription while
// it still buffers live publications.
type racingBroker struct {
	broker.Broker
	once sync.Once
	t    *testing.T
}

func (b *racingBroker) History(ctx context.Context, ch string, opts broker.HistoryOptions) (broker.HistoryResult, error) {
	res, err := b.Broker.History(ctx, ch, opts)
	b.once.Do(func() {
		if _, perr := b.Broker.Publish(ctx, ch, []byte(`"raced"`), broker.PublishOptions{HistorySize: 10}); perr != nil {
			b.t.Error(perr)
		}
	})
	return res, err
}

// TestSubscribeMergesBufferedLive checks the recovery merge: a publication
// that arrives while the subscription reads history is delivered after the
// reply, once, in order.
func TestSubscribeMergesBufferedLive(t *testing.T) {
	n := NewNode(Config{}, Deps{})
	n.broker = &racingBroker{Broker: n.broker, t: t}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	tr := &fakeTransport{}
	c := newConnected(t, n, tr)
	ch := "chat:merge"
	if _, err := c.Publish(protocol.PublishParams{Channel: ch, Data: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	var reply *protocol.SubscribeResult
	err := c.Subscribe(protocol.SubscribeParams{Channel: ch, History: 10}, func(res *protocol.SubscribeResult) {
		reply = res
		c.send([]byte(`{"id":1,"result":{}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if reply == nil || reply.Offset != 1 || len(reply.Publications) != 1 {
		t.Fatalf("reply = %+v, want position 1 with one publication", reply)
	}
	lines := tr.waitLines(t, 2)
	if len(lines) < 2 || lines[0].ID != 1 {
		t.Fatalf("want the reply first, got %+v", lines)
	}
	var offsets []uint64
	for _, l := range lines[1:] {
		if l.Push.Type == protocol.PushPublication {
			offsets = append(offsets, l.Pub.Offset)
		}
	}
	if len(offsets) != 1 || offsets[0] != 2 {
		t.Fatalf("live publications after the reply = %v, want [2]", offsets)
	}
}

// TestLiveGapDisconnects checks that a live stream that skips an offset is
// not delivered silently: the client is told to reconnect and recover.
func TestLiveGapDisconnects(t *testing.T) {
	n := startNode(t, Config{})
	tr := &fakeTransport{}
	c := newConnected(t, n, tr)
	if err := c.Subscribe(protocol.SubscribeParams{Channel: "chat:gap"}, nil); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	s := c.subs["chat:gap"]
	c.mu.Unlock()
	n.HandlePublication(context.Background(), "chat:gap", &protocol.Publication{Offset: 5, Data: json.RawMessage(`1`)}, protocol.StreamPosition{Offset: 5, Epoch: s.pos.Epoch})
	if d := tr.closedWith(t); d != protocol.DisconnectInsufficientState {
		t.Fatalf("closed = %v, want %v", d, protocol.DisconnectInsufficientState)
	}
}

func brokerOpts(n *Node, ch string) (o broker.PublishOptions) {
	opts, _ := n.policy.Namespace(ch)
	o.HistorySize, o.HistoryTTL = opts.HistorySize, opts.HistoryTTL
	return o
}

// BenchmarkFanout measures a publication's path from the broker to the
// transports of many subscribers: ns per delivery; allocs/op are per
// publication, whatever the number of subscribers.
//
// Plain-mode subscribers (format=plain) read no line of the full protocol:
// their broadcasts should not encode one.
func BenchmarkFanout(b *testing.B) {
	for _, plain := range []bool{false, true} {
		for _, subs := range []int{10, 1000, 10000} {
			name := fmt.Sprintf("format=protocol/subscribers=%d", subs)
			if plain {
				name = fmt.Sprintf("format=plain/subscribers=%d", subs)
			}
			b.Run(name, func(b *testing.B) { benchmarkFanout(b, subs, plain) })
		}
	}
}

func benchmarkFanout(b *testing.B, subs int, plain bool) {
	n := startNode(b, Config{})
	trs := make([]*fakeTransport, subs)
	for i := range trs {
		trs[i] = &fakeTransport{countOnly: true}
		if plain {
			c, err := n.NewClient(outbox.New(trs[i], n.OutboxOptions()), hub.FormatPlain)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Closed)
			if err := c.JoinRoom("chat:bench", "", false); err != nil {
				b.Fatal(err)
			}
			continue
		}
		c := newConnected(b, n, trs[i])
		if err := c.Subscribe(protocol.SubscribeParams{Channel: "chat:bench"}, nil); err != nil {
			b.Fatal(err)
		}
	}
	data := []byte(`{"text":"0123456789012345678901234567890123456789012345678"}`)
	opts := brokerOpts(n, "chat:bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := n.broker.Publish(context.Background(), "chat:bench", data, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}

// TestPushAfterCloseIsNotSlowConsumer: a broadcast that reaches a client
// whose connection is closing (the peer closed it) is dropped; it does not
// make a slow consumer of a client that left normally.
func TestPushAfterCloseIsNotSlowConsumer(t *testing.T) {
	n := startNode(t, Config{})
	c := newConnected(t, n, &fakeTransport{})
	if err := c.Subscribe(protocol.SubscribeParams{Channel: "chat:bye"}, nil); err != nil {
		t.Fatal(err)
	}
	c.out.Close(protocol.Disconnect{Code: 1000}) // as the transport does when the peer closes
	if _, err := n.Publish(context.Background(), "chat:bye", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode.Load(); code != 0 {
		t.Fatalf("close code %d after a push to a closing connection, want 0 (closed by the client)", code)
	}
}

// TestPushesCountWhatIsWritten: in a plain room of 5 clients where the
// sender hears no echo, a publication is 4 pushes, not 5 (the admin page
// and redcast_pushes_total show what is written).
func TestPushesCountWhatIsWritten(t *testing.T) {
	n := startNode(t, Config{})
	var clients []*Client
	trs := make([]*fakeTransport, 5)
	for i := range trs {
		trs[i] = &fakeTransport{}
		c, err := n.NewClient(outbox.New(trs[i], n.OutboxOptions()), hub.FormatPlain)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Closed)
		if err := c.JoinRoom("chat:count", fmt.Sprintf("p%d", i), false); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	before := n.table.pushes.Load()
	if err := clients[0].PublishText("chat:count", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for _, tr := range trs[1:] {
		wait.For(t, "the publication", func() bool { return tr.count.Load() >= 1 })
	}
	if got := n.table.pushes.Load() - before; got != 4 {
		t.Errorf("a publication in a room of 5 without echo counted %d pushes, want 4", got)
	}
}
