package redis

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// A worker delivers the pub/sub messages of the channels that hash to it,
// one at a time, so each channel's events reach the handler in order while
// the pub/sub read loop only routes and never waits.
//
// For every subscribed channel the worker remembers the last position it
// delivered. A publication that does not follow it (an offset skipped, or
// the node's pub/sub connection was down, or a message was dropped on a
// full queue) makes the worker read the channel's history since that
// position and deliver what was missed first; what history cannot cover
// is left as a gap in the offsets that the node's subscriptions detect.
type worker struct {
	b     *Broker
	queue chan item     // pub/sub messages, bounded
	wake  chan struct{} // signals dirty channels; capacity 1

	// mu is held while calling the handler, and guards what the worker
	// knows of each channel (chanState.pos, known).
	mu sync.Mutex
	// setMu guards chans, which channels the worker tracks. It is taken
	// under mu, never the other way round, and never held while waiting:
	// the subscription manager adds and removes channels holding
	// subscriptions.mu, which the pub/sub read loop needs, so it must not
	// wait for a handler call to end.
	setMu sync.Mutex
	chans map[string]*chanState // the subscribed channels of this worker

	// flush writes what the worker's deliveries queued (the handler's
	// DeliveryScope); set by run, called only from its goroutine, with
	// no lock held.
	flush func()

	// dirtyMu is not mu, so that route never waits for a handler call.
	dirtyMu sync.Mutex
	dirty   map[string]struct{} // channels to resynchronise from history
}

// item is one pub/sub message of a channel.
type item struct {
	channel string
	msg     string
}

// chanState is what a worker knows of a channel.
type chanState struct {
	owner *subRequest             // the subscription it serves; never changes
	pos   protocol.StreamPosition // last position delivered, or noted at Subscribe; under worker.mu
	known bool                    // pos is set; under worker.mu
}

func newWorker(b *Broker) *worker {
	return &worker{
		b:     b,
		queue: make(chan item, b.cfg.WorkerQueue),
		wake:  make(chan struct{}, 1),
		chans: make(map[string]*chanState),
		dirty: make(map[string]struct{}),
		flush: func() {},
	}
}

// workerFor returns the worker of a channel.
func (b *Broker) workerFor(channel string) *worker {
	return b.workers[maphash.String(b.seed, channel)%uint64(len(b.workers))]
}

// route is the pub/sub connection's OnMessage hook: it hands the message to
// the channel's worker without blocking. When the worker's queue is full
// the message is dropped, counted, and the channel marked for a resync.
func (b *Broker) route(m rueidis.PubSubMessage) {
	ch, ok := b.channelOf(m.Channel)
	if !ok {
		return
	}
	w := b.workerFor(ch)
	select {
	case w.queue <- item{channel: ch, msg: m.Message}:
	default:
		b.dropped.Add(1)
		w.markDirty(ch)
	}
}

// maxDrain is how many more queued messages a worker delivers after one
// before it flushes the handler's writes (see EventHandler.DeliveryScope).
const maxDrain = 64

// run delivers until ctx ends. Channels whose resync failed (Redis could
// not be read) are tried again after a backoff.
func (w *worker) run(ctx context.Context) {
	var (
		retry <-chan time.Time
		delay = w.b.cfg.MinReconnectDelay
	)
	dctx, flush := w.b.handler.DeliveryScope(ctx)
	w.flush = flush
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-w.queue:
			w.handle(dctx, it)
			// Deliver what else is queued before writing to connections:
			// a connection that gets several gets them in one write.
			for range maxDrain {
				select {
				case it = <-w.queue:
					w.handle(dctx, it)
					continue
				default:
				}
				break
			}
			flush()
			continue
		case <-w.wake:
		case <-retry:
		}
		ok := w.resyncDirty(dctx)
		flush()
		if ok {
			retry, delay = nil, w.b.cfg.MinReconnectDelay
		} else {
			retry = time.After(delay)
			delay = min(2*delay, w.b.cfg.MaxReconnectDelay)
		}
	}
}

// add starts tracking a channel for the subscription owner; deliveries
// of untracked channels are dropped. It does not wait for a handler call.
func (w *worker) add(channel string, owner *subRequest) {
	w.setMu.Lock()
	defer w.setMu.Unlock()
	if st := w.chans[channel]; st == nil || st.owner != owner {
		w.chans[channel] = &chanState{owner: owner}
	}
}

// remove stops tracking a channel for owner: no handler call for it
// starts afterwards. It does not wait for a handler call in progress
// (see quiesce).
func (w *worker) remove(channel string, owner *subRequest) {
	w.setMu.Lock()
	defer w.setMu.Unlock()
	if st := w.chans[channel]; st != nil && st.owner == owner {
		delete(w.chans, channel)
	}
}

// quiesce waits until no handler call is in progress: after remove, the
// handler is then not called for the channel any more.
func (w *worker) quiesce() {
	w.mu.Lock()
	defer w.mu.Unlock() // taking mu is the point: a barrier
}

// state returns what the worker knows of a channel, or nil if it does
// not track it.
func (w *worker) state(channel string) *chanState {
	w.setMu.Lock()
	defer w.setMu.Unlock()
	return w.chans[channel]
}

// setFloor notes the channel's position read right after owner
// subscribed it, unless something was delivered already: after an
// outage, publications after it are read from history. It waits for a
// handler call in progress.
func (w *worker) setFloor(channel string, owner *subRequest, pos protocol.StreamPosition) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.state(channel); st != nil && st.owner == owner && !st.known {
		st.pos, st.known = pos, true
	}
}

// markDirty asks the worker to resynchronise the channel from history.
func (w *worker) markDirty(channel string) {
	w.dirtyMu.Lock()
	w.dirty[channel] = struct{}{}
	w.dirtyMu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) handle(ctx context.Context, it item) {
	if it.msg == "" {
		return
	}
	switch it.msg[0] {
	case msgPublication:
		pos, body, err := parsePublicationMessage(it.msg[1:])
		if err != nil {
			return
		}
		pub, err := decodeBody(body)
		if err != nil {
			return
		}
		pub.Offset = pos.Offset
		w.handlePublication(ctx, it.channel, pub, pos)
	case msgJoin, msgLeave:
		info, err := decodeInfo(it.msg[1:])
		if err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.state(it.channel) == nil {
			return
		}
		if it.msg[0] == msgJoin {
			w.b.handler.HandleJoin(ctx, it.channel, info)
		} else {
			w.b.handler.HandleLeave(ctx, it.channel, info)
		}
	}
}

func (w *worker) handlePublication(ctx context.Context, ch string, pub *protocol.Publication, pos protocol.StreamPosition) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.state(ch)
	if st == nil {
		return
	}
	if st.known && pos.Epoch == st.pos.Epoch && pos.Offset > st.pos.Offset+1 {
		// Something was missed: deliver it from history first. What
		// was delivered so far is written before the history read,
		// which may take up to the broker's timeout.
		w.mu.Unlock()
		w.flush()
		w.resync(ctx, []string{ch})
		w.mu.Lock()
		if st = w.state(ch); st == nil {
			return
		}
	}
	if st.known && pos.Epoch == st.pos.Epoch && pos.Offset <= st.pos.Offset {
		return // delivered already (live after history, or a duplicate)
	}
	w.deliverLocked(ctx, ch, st, pub, pos)
}

func (w *worker) deliverLocked(ctx context.Context, ch string, st *chanState, pub *protocol.Publication, pos protocol.StreamPosition) {
	w.b.handler.HandlePublication(ctx, ch, pub, pos)
	st.pos, st.known = pos, true
}

// resyncDirty resynchronises the channels marked dirty. Those that fail
// stay dirty; it reports whether none did.
func (w *worker) resyncDirty(ctx context.Context) bool {
	w.dirtyMu.Lock()
	chans := make([]string, 0, len(w.dirty))
	for ch := range w.dirty {
		chans = append(chans, ch)
	}
	clear(w.dirty)
	w.dirtyMu.Unlock()
	failed := w.resync(ctx, chans)
	if len(failed) == 0 {
		return true
	}
	w.dirtyMu.Lock()
	for _, ch := range failed {
		w.dirty[ch] = struct{}{}
	}
	w.dirtyMu.Unlock()
	return false
}

// resync reads each channel's history since its last delivered position
// and delivers what follows it. When history cannot cover the gap (trimmed,
// expired, or a new epoch) what it has is delivered anyway and the
// remembered position jumps to the channel's current one: the node's
// subscriptions see the gap or the new epoch and make their clients
// recover. When Redis cannot be read, nothing changes and the channel is
// returned among the failed ones.
func (w *worker) resync(ctx context.Context, chans []string) (failed []string) {
	calls := make([]historyCall, 0, len(chans))
	states := make([]*chanState, 0, len(chans))
	w.mu.Lock()
	for _, ch := range chans {
		st := w.state(ch)
		if st == nil || !st.known {
			continue
		}
		since := st.pos
		calls = append(calls, historyCall{channel: ch, opts: broker.HistoryOptions{Since: &since, Limit: -1}})
		states = append(states, st)
	}
	w.mu.Unlock()
	if len(calls) == 0 {
		return nil
	}
	results, errs := w.b.historyMany(ctx, calls)
	// In a new epoch the old offset means nothing: read the new epoch
	// from its start.
	var again []int
	for i, c := range calls {
		if errs[i] == nil && results[i].Position.Epoch != c.opts.Since.Epoch {
			again = append(again, i)
		}
	}
	// A stream that went back in its epoch lost writes the node saw:
	// start a new epoch, so that subscribers recover instead of taking
	// the offsets given out again for duplicates.
	for i, c := range calls {
		since := c.opts.Since
		if errs[i] == nil && results[i].Position.Epoch == since.Epoch && results[i].Position.Offset < since.Offset {
			results[i] = broker.HistoryResult{}
			results[i].Position, errs[i] = w.b.rewind(ctx, c.channel, *since)
		}
	}
	if len(again) > 0 {
		recalls := make([]historyCall, len(again))
		for j, i := range again {
			recalls[j] = historyCall{channel: calls[i].channel, opts: broker.HistoryOptions{Since: &protocol.StreamPosition{}, Limit: -1}}
		}
		res2, errs2 := w.b.historyMany(ctx, recalls)
		for j, i := range again {
			results[i], errs[i] = res2[j], errs2[j]
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range calls {
		st := states[i]
		if w.state(c.channel) != st {
			continue // unsubscribed meanwhile
		}
		if errs[i] != nil {
			failed = append(failed, c.channel)
			continue
		}
		res := results[i]
		for _, pub := range res.Publications {
			if res.Position.Epoch == st.pos.Epoch && pub.Offset <= st.pos.Offset {
				continue
			}
			w.deliverLocked(ctx, c.channel, st, pub, protocol.StreamPosition{Offset: pub.Offset, Epoch: res.Position.Epoch})
		}
		if res.Position.Epoch != st.pos.Epoch || res.Position.Offset > st.pos.Offset {
			st.pos = res.Position
		}
	}
	return failed
}
