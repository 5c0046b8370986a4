package redcast

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// historyBatch coalesces the history reads of subscribes: while one read of
// a channel (from one position, or the latest publications) is under way,
// the subscribes that need the same read wait for the next one, which
// starts when the first ends and serves them all. A storm of clients
// subscribing to one channel then costs a few broker round trips, not one
// per client.
//
// A read serves only subscribes that joined it before it started, that is
// after they were added to the hub: what is published after the read is
// delivered to them live, so the subscription's merge by offset stays
// exact.
type historyBatch struct {
	seed   maphash.Seed
	shards [64]historyShard
}

type historyShard struct {
	mu      sync.Mutex
	running map[historyKey]bool
	next    map[historyKey]*historyRead
}

// historyKey names a read: a channel, from a position or the latest.
type historyKey struct {
	channel string
	since   protocol.StreamPosition
	recover bool
}

// historyRead is one read and the subscribes waiting for it.
type historyRead struct {
	limit  int // the most any joiner asked for
	joined int // callers served by it
	done   chan struct{}
	res    broker.HistoryResult
	err    error
}

func newHistoryBatch() *historyBatch {
	hb := &historyBatch{seed: maphash.MakeSeed()}
	for i := range hb.shards {
		hb.shards[i].running = make(map[historyKey]bool)
		hb.shards[i].next = make(map[historyKey]*historyRead)
	}
	return hb
}

// read returns the channel's history as b.History(ch, opts) would, sharing
// the read with concurrent callers that want the same. opts.Limit must not
// be negative. The result's publications are shared: do not modify them.
func (hb *historyBatch) read(ctx context.Context, b broker.Broker, ch string, opts broker.HistoryOptions) (broker.HistoryResult, error) {
	key := historyKey{channel: ch}
	if opts.Since != nil {
		key.since, key.recover = *opts.Since, true
	}
	sh := &hb.shards[maphash.String(hb.seed, ch)%uint64(len(hb.shards))]
	sh.mu.Lock()
	r := sh.next[key]
	if r == nil {
		r = &historyRead{done: make(chan struct{})}
		sh.next[key] = r
	}
	r.limit = max(r.limit, opts.Limit)
	r.joined++
	lead := !sh.running[key]
	if lead {
		// Nothing under way: this read starts now, and later callers
		// wait for the next.
		delete(sh.next, key)
		sh.running[key] = true
	}
	sh.mu.Unlock()

	if lead {
		hb.run(b, sh, key, r)
	} else {
		select {
		case <-r.done:
		case <-ctx.Done():
			return broker.HistoryResult{}, ctx.Err()
		}
	}
	if r.err != nil {
		return broker.HistoryResult{}, r.err
	}
	res := r.res
	if !key.recover && len(res.Publications) > opts.Limit {
		// The latest Limit of the latest r.limit.
		res.Publications = res.Publications[len(res.Publications)-opts.Limit:]
	}
	return res, nil
}

// run performs r, then, if callers joined the next read of key meanwhile,
// starts it on a goroutine of its own (which ends once no caller waits for
// a further one; each read is bounded by cleanupTimeout).
func (hb *historyBatch) run(b broker.Broker, sh *historyShard, key historyKey, r *historyRead) {
	opts := broker.HistoryOptions{Limit: r.limit}
	if key.recover {
		since := key.since
		opts.Since = &since
	}
	// Not the caller's context: the read serves others too.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	r.res, r.err = b.History(ctx, key.channel, opts)
	cancel()
	close(r.done)

	sh.mu.Lock()
	next := sh.next[key]
	if next == nil {
		delete(sh.running, key)
	} else {
		delete(sh.next, key)
	}
	sh.mu.Unlock()
	if next != nil {
		go hb.run(b, sh, key, next)
	}
}
