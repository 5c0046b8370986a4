package brokertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// history returns the channel's history per opts, failing t on error.
func history(t *testing.T, b broker.Broker, ch string, opts broker.HistoryOptions) broker.HistoryResult {
	t.Helper()
	res, err := b.History(t.Context(), ch, opts)
	if err != nil {
		t.Fatalf("History(%q, %+v): %v", ch, opts, err)
	}
	return res
}

// offsets returns the offsets of pubs, to compare with what a check expects.
func offsets(pubs []*protocol.Publication) string {
	o := make([]uint64, len(pubs))
	for i, p := range pubs {
		o[i] = p.Offset
	}
	return fmt.Sprint(o)
}

// checkHistory fails t unless res holds the publications with offsets want
// (payload(offset) each) at position pos.
func checkHistory(t *testing.T, what string, res broker.HistoryResult, pos protocol.StreamPosition, want ...uint64) {
	t.Helper()
	if got, w := offsets(res.Publications), fmt.Sprint(want); got != w {
		t.Errorf("%s: offsets %s, want %s", what, got, w)
	}
	if res.Position != pos {
		t.Errorf("%s: position %+v, want %+v", what, res.Position, pos)
	}
	for _, p := range res.Publications {
		if string(p.Data) != string(payload(int(p.Offset))) {
			t.Errorf("%s: publication %d holds %q, want %q", what, p.Offset, p.Data, payload(int(p.Offset)))
		}
	}
}

// publishN publishes payload(1) to payload(n) and returns the last position.
func publishN(t *testing.T, b broker.Broker, ch string, n int, opts broker.PublishOptions) protocol.StreamPosition {
	t.Helper()
	var pos protocol.StreamPosition
	for i := 1; i <= n; i++ {
		pos = publish(t, b, ch, i, opts)
	}
	return pos
}

func testHistoryEmpty(t *testing.T, b broker.Broker, _ *Recorder) {
	res := history(t, b, "a", broker.HistoryOptions{Limit: -1})
	if res.Position.Offset != 0 || res.Position.Epoch == "" || len(res.Publications) != 0 {
		t.Fatalf("history of a new channel: %d publications at %+v, want none at offset 0 with an epoch",
			len(res.Publications), res.Position)
	}
	// The epoch read before the first publication is the epoch it gets, so
	// that a subscriber of an empty channel can follow it without a gap.
	if pos := publish(t, b, "a", 1, broker.PublishOptions{}); pos != (protocol.StreamPosition{Offset: 1, Epoch: res.Position.Epoch}) {
		t.Errorf("first publication at %+v, want {1 %q}", pos, res.Position.Epoch)
	}
}

func testHistoryLatest(t *testing.T, b broker.Broker, _ *Recorder) {
	pos := publishN(t, b, "a", 5, broker.PublishOptions{HistorySize: 10})
	checkHistory(t, "Limit 2", history(t, b, "a", broker.HistoryOptions{Limit: 2}), pos, 4, 5)
	checkHistory(t, "Limit 10", history(t, b, "a", broker.HistoryOptions{Limit: 10}), pos, 1, 2, 3, 4, 5)
	checkHistory(t, "Limit -1", history(t, b, "a", broker.HistoryOptions{Limit: -1}), pos, 1, 2, 3, 4, 5)
	checkHistory(t, "Limit 0", history(t, b, "a", broker.HistoryOptions{}), pos)
}

func testHistorySince(t *testing.T, b broker.Broker, _ *Recorder) {
	pos := publishN(t, b, "a", 5, broker.PublishOptions{HistorySize: 10})
	since := func(offset uint64, limit int) broker.HistoryResult {
		return history(t, b, "a", broker.HistoryOptions{Since: &protocol.StreamPosition{Offset: offset, Epoch: pos.Epoch}, Limit: limit})
	}
	checkHistory(t, "since 2, Limit -1", since(2, -1), pos, 3, 4, 5)
	checkHistory(t, "since 2, Limit 2", since(2, 2), pos, 3, 4)
	checkHistory(t, "since 0, Limit -1", since(0, -1), pos, 1, 2, 3, 4, 5)
	checkHistory(t, "since 5, Limit -1", since(5, -1), pos)
	checkHistory(t, "since 2, Limit 0", since(2, 0), pos)
}

func testHistorySize(t *testing.T, b broker.Broker, _ *Recorder) {
	pos := publishN(t, b, "a", 6, broker.PublishOptions{HistorySize: 3})
	checkHistory(t, "Limit -1", history(t, b, "a", broker.HistoryOptions{Limit: -1}), pos, 4, 5, 6)
	// A caller that asks for what follows offset 1 sees the gap: the first
	// publication returned is not offset 2.
	res := history(t, b, "a", broker.HistoryOptions{Since: &protocol.StreamPosition{Offset: 1, Epoch: pos.Epoch}, Limit: -1})
	checkHistory(t, "since 1", res, pos, 4, 5, 6)
}

func testHistorySizeZero(t *testing.T, b broker.Broker, _ *Recorder) {
	pos := publishN(t, b, "a", 3, broker.PublishOptions{})
	if pos.Offset != 3 {
		t.Fatalf("third publication at offset %d, want 3", pos.Offset)
	}
	checkHistory(t, "Limit -1", history(t, b, "a", broker.HistoryOptions{Limit: -1}), pos)
}

func testHistoryTTL(t *testing.T, b broker.Broker, _ *Recorder) {
	const ttl = 200 * time.Millisecond
	opts := broker.PublishOptions{HistorySize: 10, HistoryTTL: ttl}
	begin := time.Now()
	pos := publishN(t, b, "a", 3, opts)
	res := history(t, b, "a", broker.HistoryOptions{Limit: -1})
	if time.Since(begin) < ttl { // otherwise they may be gone already
		checkHistory(t, "before the TTL", res, pos, 1, 2, 3)
	}
	WaitFor(t, "history to expire", func() bool {
		return len(history(t, b, "a", broker.HistoryOptions{Limit: -1}).Publications) == 0
	})
	checkHistory(t, "after the TTL", history(t, b, "a", broker.HistoryOptions{Limit: -1}), pos)
	// Expiry empties history; the stream goes on.
	if next := publish(t, b, "a", 4, opts); next != (protocol.StreamPosition{Offset: 4, Epoch: pos.Epoch}) {
		t.Errorf("publication after expiry at %+v, want {4 %q}", next, pos.Epoch)
	}
}
