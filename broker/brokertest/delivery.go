package brokertest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// publish publishes payload(n) and returns its position, failing t on error.
func publish(t *testing.T, b broker.Broker, ch string, n int, opts broker.PublishOptions) protocol.StreamPosition {
	t.Helper()
	pos, err := b.Publish(t.Context(), ch, payload(n), opts)
	if err != nil {
		t.Fatalf("Publish(%q): %v", ch, err)
	}
	return pos
}

func subscribe(t *testing.T, b broker.Broker, channels ...string) {
	t.Helper()
	for _, ch := range channels {
		if err := b.Subscribe(t.Context(), ch); err != nil {
			t.Fatalf("Subscribe(%q): %v", ch, err)
		}
	}
}

func testPublishOffsets(t *testing.T, b broker.Broker, _ *Recorder) {
	var epoch string
	for i := 1; i <= 3; i++ {
		pos := publish(t, b, "a", i, broker.PublishOptions{})
		if i == 1 {
			epoch = pos.Epoch
		}
		if pos.Offset != uint64(i) || pos.Epoch != epoch {
			t.Fatalf("publication %d: position %+v, want {%d %q}", i, pos, i, epoch)
		}
	}
	if epoch == "" {
		t.Fatal("empty epoch")
	}
	for i := 1; i <= 2; i++ {
		if pos := publish(t, b, "b", i, broker.PublishOptions{}); pos.Offset != uint64(i) || pos.Epoch == "" {
			t.Fatalf("channel b, publication %d: position %+v, want offset %d and an epoch", i, pos, i)
		}
	}
}

func testDelivery(t *testing.T, b broker.Broker, rec *Recorder) {
	subscribe(t, b, "a")
	from := clientInfo("c1", "ann")
	const n = 5
	var buf []byte // reused between publications, as callers may
	var epoch string
	for i := 1; i <= n; i++ {
		buf = append(buf[:0], payload(i)...)
		pos, err := b.Publish(t.Context(), "a", buf, broker.PublishOptions{HistorySize: 10, From: from})
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		epoch = pos.Epoch
		for j := range buf {
			buf[j] = 'x'
		}
	}
	events := rec.Wait(t, "a", n)
	for i, e := range events {
		want := uint64(i + 1)
		switch {
		case e.Kind != "pub":
			t.Fatalf("event %d is a %s, want a publication", i, e.Kind)
		case e.Pub.Offset != want || e.Pos.Offset != want || e.Pos.Epoch != epoch:
			t.Errorf("event %d: offset %d at %+v, want offset %d at {%d %q}", i, e.Pub.Offset, e.Pos, want, want, epoch)
		case !bytes.Equal(e.Pub.Data, payload(i+1)):
			t.Errorf("event %d: data %q, want %q", i, e.Pub.Data, payload(i+1))
		case !sameClient(e.Pub.From, from):
			t.Errorf("event %d: from %+v, want %+v", i, e.Pub.From, from)
		case e.Pub.Time <= 0:
			t.Errorf("event %d: time %d, want the publication's time", i, e.Pub.Time)
		}
	}
	res, err := b.History(t.Context(), "a", broker.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	for i, p := range res.Publications {
		if !bytes.Equal(p.Data, payload(i+1)) {
			t.Errorf("history %d: data %q, want %q", i, p.Data, payload(i+1))
		}
	}
}

func testConcurrentPublishers(t *testing.T, b broker.Broker, rec *Recorder) {
	subscribe(t, b, "a")
	const publishers, each = 8, 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		offsets = map[uint64]bool{}
		epochs  = map[string]bool{}
	)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				pos, err := b.Publish(t.Context(), "a", payload(p*each+i), broker.PublishOptions{})
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				offsets[pos.Offset], epochs[pos.Epoch] = true, true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const total = publishers * each
	if len(offsets) != total || len(epochs) != 1 {
		t.Fatalf("got %d distinct offsets in %d epochs, want %d in 1", len(offsets), len(epochs), total)
	}
	for i, e := range rec.Wait(t, "a", total) {
		if want := uint64(i + 1); e.Pub.Offset != want || e.Pos.Offset != want {
			t.Fatalf("delivery %d: offset %d at %+v, want %d", i, e.Pub.Offset, e.Pos, want)
		}
	}
	if rec.Concurrent("a") {
		t.Error("HandlePublication ran concurrently for one channel")
	}
}

func testNoDeliveryWithoutSubscription(t *testing.T, b broker.Broker, rec *Recorder) {
	subscribe(t, b, "a", "marker")
	publish(t, b, "other", 1, broker.PublishOptions{})
	publish(t, b, "a", 1, broker.PublishOptions{})
	rec.Wait(t, "a", 1)
	if err := b.Unsubscribe(t.Context(), "a"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	publish(t, b, "a", 2, broker.PublishOptions{})
	publish(t, b, "a", 3, broker.PublishOptions{})
	// Delivery has caught up once the marker, published last, arrives.
	publish(t, b, "marker", 1, broker.PublishOptions{})
	rec.Wait(t, "marker", 1)
	if n := rec.Count("a"); n != 1 {
		t.Errorf("channel a got %d events, want 1: none after Unsubscribe", n)
	}
	if n := rec.Count("other"); n != 0 {
		t.Errorf("unsubscribed channel got %d events, want 0", n)
	}
}

func testJoinLeave(t *testing.T, b broker.Broker, rec *Recorder) {
	subscribe(t, b, "a")
	ann, bob := clientInfo("c1", "ann"), clientInfo("c2", "bob")
	ctx := t.Context()
	if err := b.PublishJoin(ctx, "other", ann); err != nil {
		t.Fatalf("PublishJoin: %v", err)
	}
	if err := b.PublishJoin(ctx, "a", ann); err != nil {
		t.Fatalf("PublishJoin: %v", err)
	}
	if err := b.PublishLeave(ctx, "a", bob); err != nil {
		t.Fatalf("PublishLeave: %v", err)
	}
	events := rec.Wait(t, "a", 2)
	if e := events[0]; e.Kind != "join" || !sameClient(e.Info, ann) {
		t.Errorf("first event: %s of %+v, want join of %+v", e.Kind, e.Info, ann)
	}
	if e := events[1]; e.Kind != "leave" || !sameClient(e.Info, bob) {
		t.Errorf("second event: %s of %+v, want leave of %+v", e.Kind, e.Info, bob)
	}
	if n := rec.Count("other"); n != 0 {
		t.Errorf("unsubscribed channel got %d events, want 0", n)
	}
}

func testCanceledContext(t *testing.T, b broker.Broker, _ *Recorder) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Publish(ctx, "a", payload(1), broker.PublishOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := b.History(ctx, "a", broker.HistoryOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("History with a canceled context: %v, want context.Canceled", err)
	}
}

func testClosed(t *testing.T, b broker.Broker, _ *Recorder) {
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	if _, err := b.Publish(ctx, "a", payload(1), broker.PublishOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close: %v, want broker.ErrClosed", err)
	}
	if err := b.Subscribe(ctx, "a"); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want broker.ErrClosed", err)
	}
	if _, err := b.History(ctx, "a", broker.HistoryOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("History after Close: %v, want broker.ErrClosed", err)
	}
}
