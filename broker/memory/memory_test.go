package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		// Sweep often, so that the suite also races the cleanup goroutine.
		return New(Config{CleanupInterval: 5 * time.Millisecond})
	})
}

func TestPresenceConformance(t *testing.T) {
	brokertest.RunPresence(t, func(t *testing.T) broker.PresenceManager { return NewPresence() })
	brokertest.RunPresenceExpiry(t, func(t *testing.T, ttl time.Duration) (a, b broker.PresenceExpirer) {
		p := NewExpiringPresence(ttl)
		return p, p
	})
}

// fakeClock is a Config.Now that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countHandler counts publications.
type countHandler struct {
	brokertest.Discard
	n atomic.Int64
}

func (h *countHandler) HandlePublication(context.Context, string, *protocol.Publication, protocol.StreamPosition) {
	h.n.Add(1)
}

// startBroker returns a broker started with h, closed when tb ends.
func startBroker(tb testing.TB, cfg Config, h broker.EventHandler) *Broker {
	tb.Helper()
	b := New(cfg)
	if err := b.Start(context.Background(), h); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func mustPublish(t *testing.T, b *Broker, ch string, opts broker.PublishOptions) protocol.StreamPosition {
	t.Helper()
	pos, err := b.Publish(t.Context(), ch, []byte(`{}`), opts)
	if err != nil {
		t.Fatalf("Publish(%q): %v", ch, err)
	}
	return pos
}

func mustHistory(t *testing.T, b *Broker, ch string) broker.HistoryResult {
	t.Helper()
	res, err := b.History(t.Context(), ch, broker.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatalf("History(%q): %v", ch, err)
	}
	return res
}

// hasStream reports whether the broker keeps state for the channel, and how
// many publications its history holds (expired or not).
func (b *Broker) hasStream(ch string) (pubs int, ok bool) {
	sh := b.shard(ch)
	sh.mu.RLock()
	s := sh.streams[ch]
	sh.mu.RUnlock()
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pubs), true
}

func TestStreamTTLStartsNewEpoch(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{StreamTTL: time.Hour, Now: clock.Now}, brokertest.Discard{})
	first := mustPublish(t, b, "a", broker.PublishOptions{})
	clock.Advance(59 * time.Minute)
	if pos := mustPublish(t, b, "a", broker.PublishOptions{}); pos != (protocol.StreamPosition{Offset: 2, Epoch: first.Epoch}) {
		t.Fatalf("publication within StreamTTL at %+v, want {2 %q}", pos, first.Epoch)
	}
	clock.Advance(time.Hour)
	if pos := mustPublish(t, b, "a", broker.PublishOptions{}); pos.Offset != 1 || pos.Epoch == first.Epoch || pos.Epoch == "" {
		t.Fatalf("publication after StreamTTL at %+v, want offset 1 in a new epoch", pos)
	}
}

func TestStreamTTLKeepsSubscribed(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{StreamTTL: time.Hour, Now: clock.Now}, brokertest.Discard{})
	if err := b.Subscribe(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	first := mustPublish(t, b, "a", broker.PublishOptions{})
	clock.Advance(2 * time.Hour)
	if pos := mustPublish(t, b, "a", broker.PublishOptions{}); pos != (protocol.StreamPosition{Offset: 2, Epoch: first.Epoch}) {
		t.Fatalf("subscribed channel after StreamTTL at %+v, want {2 %q}", pos, first.Epoch)
	}
	clock.Advance(2 * time.Hour)
	if err := b.Unsubscribe(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	// StreamTTL counts from the unsubscribe.
	clock.Advance(59 * time.Minute)
	if pos := mustHistory(t, b, "a").Position; pos != (protocol.StreamPosition{Offset: 2, Epoch: first.Epoch}) {
		t.Fatalf("position within StreamTTL of unsubscribing: %+v, want {2 %q}", pos, first.Epoch)
	}
	clock.Advance(time.Minute)
	if pos := mustHistory(t, b, "a").Position; pos.Offset != 0 || pos.Epoch == first.Epoch {
		t.Fatalf("position after StreamTTL: %+v, want offset 0 in a new epoch", pos)
	}
}

func TestStreamTTLWaitsForHistory(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{StreamTTL: time.Hour, Now: clock.Now}, brokertest.Discard{})
	first := mustPublish(t, b, "a", broker.PublishOptions{HistorySize: 10, HistoryTTL: 2 * time.Hour})
	clock.Advance(90 * time.Minute)
	if res := mustHistory(t, b, "a"); res.Position != first || len(res.Publications) != 1 {
		t.Fatalf("history while a publication lives: %d at %+v, want 1 at %+v", len(res.Publications), res.Position, first)
	}
	clock.Advance(30 * time.Minute)
	if pos := mustHistory(t, b, "a").Position; pos.Offset != 0 || pos.Epoch == first.Epoch {
		t.Fatalf("position after history expired and StreamTTL: %+v, want offset 0 in a new epoch", pos)
	}
}

func TestSweep(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{StreamTTL: time.Hour, HistoryTTL: 3 * time.Hour, Now: clock.Now}, brokertest.Discard{})
	mustPublish(t, b, "idle", broker.PublishOptions{})
	mustPublish(t, b, "kept", broker.PublishOptions{HistorySize: 10})
	mustPublish(t, b, "short", broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute})
	mustPublish(t, b, "short", broker.PublishOptions{HistorySize: 10})
	if err := b.Subscribe(t.Context(), "sub"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	b.sweep(clock.Now().UnixNano())
	check := func(ch string, wantOK bool, wantPubs int) {
		t.Helper()
		if pubs, ok := b.hasStream(ch); ok != wantOK || pubs != wantPubs {
			t.Errorf("stream %q: kept %v with %d publications, want %v with %d", ch, ok, pubs, wantOK, wantPubs)
		}
	}
	check("idle", false, 0)
	check("kept", true, 1)
	check("short", true, 1) // the expired one is freed, wherever it is
	check("sub", true, 0)
	clock.Advance(2 * time.Hour)
	b.sweep(clock.Now().UnixNano())
	check("kept", false, 0)
	check("sub", true, 0)
}

func TestCleanupGoroutine(t *testing.T) {
	clock := newFakeClock()
	b := New(Config{StreamTTL: time.Hour, CleanupInterval: time.Millisecond, Now: clock.Now})
	if err := b.Start(t.Context(), brokertest.Discard{}); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, "a", broker.PublishOptions{})
	clock.Advance(2 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for _, ok := b.hasStream("a"); ok; _, ok = b.hasStream("a") {
		if time.Now().After(deadline) {
			t.Fatal("cleanup goroutine did not forget an idle stream")
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t) // Close waited for the cleanup goroutine
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartAndClose(t *testing.T) {
	b := New(Config{})
	if err := b.Start(t.Context(), nil); err == nil {
		t.Error("Start with a nil handler succeeded")
	}
	if err := b.Start(t.Context(), brokertest.Discard{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context(), brokertest.Discard{}); err == nil {
		t.Error("second Start succeeded")
	}
	b.Close()
	if err := b.Start(t.Context(), brokertest.Discard{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Start after Close: %v, want broker.ErrClosed", err)
	}
	// A broker closed without being started has nothing to wait for.
	if err := New(Config{}).Close(); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
}

func TestNoDeliveryAfterClose(t *testing.T) {
	h := &countHandler{}
	b := startBroker(t, Config{}, h)
	if err := b.Subscribe(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				if _, err := b.Publish(context.Background(), "a", []byte(`{}`), broker.PublishOptions{HistorySize: 10}); err != nil {
					return
				}
			}
		})
	}
	for h.n.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	b.Close()
	delivered := h.n.Load()
	wg.Wait()
	if got := h.n.Load(); got != delivered {
		t.Errorf("%d publications delivered after Close returned", got-delivered)
	}
}

// BenchmarkPublish: see brokertest.BenchmarkPublish.
func BenchmarkPublish(b *testing.B) {
	brokertest.BenchmarkPublish(b, func(b *testing.B) broker.Broker {
		return startBroker(b, Config{}, brokertest.Discard{})
	}, 0)
}

func TestRevocationConformance(t *testing.T) {
	brokertest.RunRevocations(t, func(t *testing.T) broker.RevocationStore { return NewRevocations() })
}

// TestIdempotencyKeysBounded: a channel keeps at most MaxIdempotencyKeys
// keys; past it the oldest are forgotten (a repeat of one publishes
// again) and the newest still hold.
func TestIdempotencyKeysBounded(t *testing.T) {
	b := startBroker(t, Config{}, brokertest.Discard{})
	key := func(i int) broker.PublishOptions {
		return broker.PublishOptions{IdempotencyKey: fmt.Sprintf("k%d", i)}
	}
	for i := range MaxIdempotencyKeys + 10 {
		mustPublish(t, b, "a", key(i))
	}
	last := uint64(MaxIdempotencyKeys + 10)
	if pos := mustPublish(t, b, "a", key(MaxIdempotencyKeys+9)); pos.Offset != last {
		t.Fatalf("a repeat of the newest key at %+v, want its offset %d", pos, last)
	}
	if pos := mustPublish(t, b, "a", key(0)); pos.Offset != last+1 {
		t.Fatalf("a repeat of the oldest key at %+v, want a new publication at %d (forgotten past the bound)", pos, last+1)
	}
	sh := b.shard("a")
	sh.mu.RLock()
	s := sh.streams["a"]
	sh.mu.RUnlock()
	s.mu.Lock()
	n := len(s.keys.byKey)
	s.mu.Unlock()
	if n > MaxIdempotencyKeys {
		t.Errorf("%d keys kept, want at most %d", n, MaxIdempotencyKeys)
	}
}
