package redcast

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
)

// gatedBroker counts History calls and holds the first until released.
type gatedBroker struct {
	broker.Broker
	calls   atomic.Int32
	release chan struct{}
}

func (g *gatedBroker) History(ctx context.Context, ch string, opts broker.HistoryOptions) (broker.HistoryResult, error) {
	if g.calls.Add(1) == 1 {
		<-g.release
	}
	return g.Broker.History(ctx, ch, opts)
}

// TestHistoryBatch: while one read of a channel is under way, concurrent
// reads of the same wait for one more read that serves them all, each
// getting the latest publications it asked for; reads of another channel
// or position are not mixed in.
func TestHistoryBatch(t *testing.T) {
	mb := memory.New(memory.Config{})
	g := &gatedBroker{Broker: mb, release: make(chan struct{})}
	ctx := t.Context()
	for i := range 5 {
		if _, err := mb.Publish(ctx, "a", []byte{'0' + byte(i)}, broker.PublishOptions{HistorySize: 10}); err != nil {
			t.Fatal(err)
		}
	}
	hb := newHistoryBatch()
	first := make(chan broker.HistoryResult, 1)
	go func() {
		res, err := hb.read(ctx, g, "a", broker.HistoryOptions{Limit: 1})
		if err != nil {
			t.Error(err)
		}
		first <- res
	}()
	wait.For(t, "the first read under way", func() bool { return g.calls.Load() == 1 })
	const n = 50
	var wg sync.WaitGroup
	results := make([]broker.HistoryResult, n)
	for i := range n {
		wg.Go(func() {
			var err error
			if results[i], err = hb.read(ctx, g, "a", broker.HistoryOptions{Limit: i % 4}); err != nil {
				t.Error(err)
			}
		})
	}
	sh := &hb.shards[0]
	for i := range hb.shards {
		if hb.shards[i].running[historyKey{channel: "a"}] {
			sh = &hb.shards[i]
		}
	}
	wait.For(t, "every reader waiting for the next read", func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		r := sh.next[historyKey{channel: "a"}]
		return r != nil && r.joined == n && r.limit == 3
	})
	// A read from a position is its own (and not held by the gate).
	other, err := hb.read(ctx, g, "a", broker.HistoryOptions{Since: &protocol.StreamPosition{Offset: 3}, Limit: 10})
	if err != nil || len(other.Publications) != 2 || other.Publications[0].Offset != 4 {
		t.Errorf("read since offset 3: %+v, %v", other, err)
	}
	close(g.release)
	wg.Wait()
	if res := <-first; len(res.Publications) != 1 || res.Position.Offset != 5 {
		t.Fatalf("first read: %+v", res)
	}
	for i, res := range results {
		if len(res.Publications) != i%4 || res.Position.Offset != 5 {
			t.Fatalf("reader %d (limit %d): %d publications at %+v", i, i%4, len(res.Publications), res.Position)
		}
		if k := len(res.Publications); k > 0 && res.Publications[k-1].Offset != 5 {
			t.Fatalf("reader %d: not the latest publications: %+v", i, res.Publications)
		}
	}
	if c := g.calls.Load(); c != 3 {
		t.Fatalf("%d History calls for %d readers of one channel and one of another position, want 3", c, n+1)
	}
}
