package brokertest

import (
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// testIdempotentPublish: a publish repeating a key of its channel gets the
// first publication's position and publishes nothing (no delivery, no
// history entry, no offset); the same key in another channel, and another
// key, publish.
func testIdempotentPublish(t *testing.T, b broker.Broker, rec *Recorder) {
	subscribe(t, b, "a", "b")
	opts := broker.PublishOptions{HistorySize: 10, IdempotencyKey: "k-1"}
	first := publish(t, b, "a", 1, opts)
	for range 3 {
		if again := publish(t, b, "a", 2, opts); again != first {
			t.Fatalf("repeated key: position %+v, want the first publication's %+v", again, first)
		}
	}
	other := publish(t, b, "a", 3, broker.PublishOptions{HistorySize: 10, IdempotencyKey: "k-2"})
	if other.Offset != first.Offset+1 {
		t.Fatalf("another key: position %+v, want offset %d", other, first.Offset+1)
	}
	if pos := publish(t, b, "b", 4, opts); pos.Offset != 1 {
		t.Fatalf("the same key in another channel: position %+v, want offset 1", pos)
	}
	plain := publish(t, b, "a", 5, broker.PublishOptions{HistorySize: 10})
	if plain.Offset != first.Offset+2 {
		t.Fatalf("publish without key: position %+v, want offset %d", plain, first.Offset+2)
	}
	events := rec.Wait(t, "a", 3)
	res, err := b.History(t.Context(), "a", broker.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Publications) != 3 || res.Position.Offset != 3 {
		t.Fatalf("history holds %d publications up to %+v, want 3 up to offset 3", len(res.Publications), res.Position)
	}
	publish(t, b, "a", 6, opts) // once more, then a marker: nothing came between
	marker := publish(t, b, "a", 7, broker.PublishOptions{})
	events = rec.Wait(t, "a", 4)
	if len(events) != 4 || events[3].Pos != marker || string(events[0].Pub.Data) != string(payload(1)) {
		t.Fatalf("deliveries of a: %d, the last at %+v; want 4, the last the marker at %+v", len(events), events[len(events)-1].Pos, marker)
	}
}

// testIdempotentPublishConcurrent: publishers racing with one key make
// exactly one publication, and all get its position.
func testIdempotentPublishConcurrent(t *testing.T, b broker.Broker, rec *Recorder) {
	subscribe(t, b, "a")
	const n = 16
	got := make([]protocol.StreamPosition, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = b.Publish(t.Context(), "a", payload(i), broker.PublishOptions{IdempotencyKey: "once"})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("publisher %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("publisher %d got %+v, publisher 0 %+v: want one position", i, got[i], got[0])
		}
	}
	marker := publish(t, b, "a", n, broker.PublishOptions{})
	if marker.Offset != got[0].Offset+1 {
		t.Fatalf("next publication at %+v, want offset %d: the racing publishers made more than one", marker, got[0].Offset+1)
	}
	if events := rec.Wait(t, "a", 2); len(events) != 2 {
		t.Fatalf("%d deliveries, want 2", len(events))
	}
}

// testIdempotencyKeyExpires: once its TTL is over, a key publishes again.
func testIdempotencyKeyExpires(t *testing.T, b broker.Broker, _ *Recorder) {
	opts := broker.PublishOptions{IdempotencyKey: "short", IdempotencyTTL: 100 * time.Millisecond}
	first := publish(t, b, "a", 1, opts)
	var pos protocol.StreamPosition
	WaitFor(t, "the key to be released after its TTL of "+opts.IdempotencyTTL.String(), func() bool {
		pos = publish(t, b, "a", 2, opts)
		return pos != first
	})
	if pos.Offset != first.Offset+1 {
		t.Fatalf("after the TTL: position %+v, want offset %d", pos, first.Offset+1)
	}
}

// testIdempotentPublishMany: in a batch (for brokers that batch), a key
// repeated within the batch or from an earlier publish publishes once.
func testIdempotentPublishMany(t *testing.T, b broker.Broker, rec *Recorder) {
	bp, ok := b.(broker.BatchPublisher)
	if !ok {
		t.Log("the broker does not batch: Publish's checks cover it")
		return
	}
	subscribe(t, b, "a")
	first := publish(t, b, "a", 1, broker.PublishOptions{IdempotencyKey: "x"})
	reqs := []broker.PublishRequest{
		{Channel: "a", Data: payload(2), Options: broker.PublishOptions{IdempotencyKey: "x"}},
		{Channel: "a", Data: payload(3), Options: broker.PublishOptions{IdempotencyKey: "y"}},
		{Channel: "a", Data: payload(4), Options: broker.PublishOptions{IdempotencyKey: "y"}},
		{Channel: "a", Data: payload(5)},
	}
	res := bp.PublishMany(t.Context(), reqs)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("request %d: %v", i, r.Err)
		}
	}
	want := []uint64{first.Offset, first.Offset + 1, first.Offset + 1, first.Offset + 2}
	for i, r := range res {
		if r.Position.Offset != want[i] {
			t.Fatalf("request %d: offset %d, want %d", i, r.Position.Offset, want[i])
		}
	}
	if events := rec.Wait(t, "a", 3); len(events) != 3 {
		t.Fatalf("%d deliveries, want 3", len(events))
	}
}
