package redcast

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/internal/reorder"
	"github.com/redcast/redcast/protocol"
)

// This file hands the transitions a node decides (a channel occupied or
// vacated, a user entering or leaving a channel) to the listeners of the
// cluster in the order they happened per channel, when many nodes decide
// them: each decision is numbered where it is made (PresenceChange.Seq,
// by the presence scripts in Redis), the node appends it to the
// presence manager's transition log, and one node at a time (the reader,
// holding a lease in the log) reads the log, puts each channel's
// transitions in number order (package reorder) and tells its listeners.
// Without a log (memory: one node) the deciding node tells its listeners
// at once, in the order it decided.
//
// Two nodes that decide transitions of one channel at nearly the same
// moment may append them in either order; the reader waits for a missing
// number up to transitionGap, and a node's own transitions of a channel
// keep their order (channel_occupied before its member_added). A reader
// that crashes loses what it had read and not yet sent: the next reader
// reads on from the progress it recorded (at least once; a few events may
// be told twice).

// transitionLog is implemented by presence managers shared by nodes (the
// Redis broker; see package broker/redis).
type transitionLog interface {
	AppendTransitions(ctx context.Context, entries [][]byte) error
	ReadTransitions(ctx context.Context, after string, count int, block time.Duration) ([]broker.LogEntry, error)
	LeadTransitions(ctx context.Context, node string, lease time.Duration, done string) (progress string, leading bool, err error)
	ResignTransitions(ctx context.Context, node string) error
}

// Timing of the transition log.
const (
	// transitionQueue bounds the transitions a node has decided and not
	// yet appended; more are dropped (and logged).
	transitionQueue = 10000
	// transitionBatch is the most transitions appended, or read, at once.
	transitionBatch = 500
	// transitionBlock is the longest the reader waits for the log to
	// have something (a blocking read: it wakes when something is
	// appended), so that what it holds is looked at again that often.
	transitionBlock = 250 * time.Millisecond
	// transitionLease is how long the reader's lease lasts unless renewed
	// (every third of it): how long the cluster's transitions wait after
	// the reader crashed. A quarter of the presence TTL when that is
	// shorter, so that a crashed reader's successor tells a crashed
	// node's leaves within the TTL too.
	transitionLease = 3 * time.Second
	// transitionWait is how long a transition waits for lower numbers of
	// its channel when the reader knows none yet; transitionGap how long
	// for a number that is missing (its node crashed before appending it,
	// or dropped it); transitionForget how long the reader remembers an
	// idle channel's last number.
	transitionWait   = 500 * time.Millisecond
	transitionGap    = 2 * time.Second
	transitionForget = 10 * time.Minute
)

// transition is one entry of the log.
type transition struct {
	Channel   string               `json:"c"`
	Occupancy bool                 `json:"o,omitempty"`  // else a user's
	In        bool                 `json:"in,omitempty"` // occupied, entered
	Seq       uint64               `json:"s"`
	Node      string               `json:"n"`
	Info      *protocol.ClientInfo `json:"i,omitempty"`
}

// transitions is the node's state of the above.
type transitions struct {
	log      atomic.Pointer[transitionLog] // set once the appender runs
	queue    chan transition
	appended chan struct{} // closed when the appender stopped
	dropped  atomic.Uint64
	lastDrop atomic.Int64 // Unix ns of the last drop logged
	// testHookAppend, when set, is called before each append;
	// testHookRead after each read of the log, with the entries read.
	testHookAppend func()
	testHookRead   func(entries int)
}

func newTransitions() *transitions {
	return &transitions{queue: make(chan transition, transitionQueue), appended: make(chan struct{})}
}

// startTransitions starts the appender and the reader of the log; they
// stop when ctx ends, the appender after appending what is queued, the
// reader after telling what was appended.
func (n *Node) startTransitions(ctx context.Context, tl transitionLog, ttl time.Duration) {
	n.trans.log.Store(&tl)
	lease := transitionLease
	if ttl > 0 {
		lease = min(lease, max(ttl/4, 3*time.Millisecond))
	}
	n.wg.Go(func() { n.appendTransitions(ctx, tl) })
	n.wg.Go(func() { n.readTransitions(ctx, tl, lease) })
}

// logged reports whether transitions go through a transition log (the
// presence manager keeps one, and numbered t) and, if so, queues t for it.
func (n *Node) logged(t transition) bool {
	if n.trans.log.Load() == nil || t.Seq == 0 {
		return false
	}
	t.Node = n.life.entry.Client
	select {
	case n.trans.queue <- t:
	default:
		n.trans.dropped.Add(1)
		now := time.Now().UnixNano()
		if last := n.trans.lastDrop.Load(); now-last > int64(time.Second) && n.trans.lastDrop.CompareAndSwap(last, now) {
			n.log.Warn("transition log queue full: transitions dropped", "dropped", n.trans.dropped.Load())
		}
	}
	return true
}

// appendTransitions appends what is queued, in order, a batch at a time.
func (n *Node) appendTransitions(ctx context.Context, tl transitionLog) {
	defer close(n.trans.appended)
	batch := make([][]byte, 0, transitionBatch)
	for {
		var t transition
		stopping := false
		select {
		case t = <-n.trans.queue:
		case <-ctx.Done():
			stopping = true
		}
		if stopping {
			// Append what was queued before the stop.
			actx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			for len(n.trans.queue) > 0 {
				batch = n.takeTransitions(batch[:0], <-n.trans.queue)
				n.appendBatch(actx, tl, batch)
			}
			cancel()
			return
		}
		batch = n.takeTransitions(batch[:0], t)
		n.appendBatch(ctx, tl, batch)
	}
}

// takeTransitions appends t and what else is queued, up to a batch, to
// batch, encoded.
func (n *Node) takeTransitions(batch [][]byte, t transition) [][]byte {
	for {
		data, err := json.Marshal(t)
		if err == nil {
			batch = append(batch, data)
		}
		if len(batch) == transitionBatch {
			return batch
		}
		select {
		case t = <-n.trans.queue:
		default:
			return batch
		}
	}
}

// appendBatch appends batch, trying again while Redis is unavailable for
// up to cleanupTimeout (a blip between a decision and its append loses
// nothing); then the batch is dropped and logged.
func (n *Node) appendBatch(ctx context.Context, tl transitionLog, batch [][]byte) {
	if h := n.trans.testHookAppend; h != nil {
		h()
	}
	giveUp := time.Now().Add(cleanupTimeout)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := tl.AppendTransitions(ctx, batch)
		if err == nil || ctx.Err() != nil {
			return
		}
		if !errors.Is(err, broker.ErrUnavailable) || time.Now().Add(wait).After(giveUp) {
			n.trans.dropped.Add(uint64(len(batch)))
			n.log.Warn("append to transition log failed: transitions lost", "transitions", len(batch), "err", err)
			return
		}
		sleep(ctx, wait)
	}
}

// readTransitions takes the lease of the log's reader when this node has
// listeners and nobody holds it, and while it holds it reads the log and
// tells its listeners, in order.
func (n *Node) readTransitions(ctx context.Context, tl transitionLog, lease time.Duration) {
	var r *transitionReader
	var renewed, held time.Time // the last try, and the last success
	for {
		if ctx.Err() != nil {
			if r != nil {
				<-n.trans.appended
				r.finish(tl, lease)
			}
			return
		}
		if r == nil && len(*n.life.listeners.Load()) == 0 {
			sleep(ctx, lease/3) // nothing to tell: let a node that has listeners read
			continue
		}
		now := time.Now()
		// The lease is asked for, and renewed, every third of it, and the
		// progress recorded as soon as something was told, so that a
		// reader that crashes leaves little to be told twice.
		if now.Sub(renewed) >= lease/3 || (r != nil && r.done != r.recorded) {
			renewed = now
			done := ""
			if r != nil {
				done = r.done
			}
			progress, leading, err := tl.LeadTransitions(ctx, n.life.entry.Client, lease, done)
			switch {
			case err != nil:
				if ctx.Err() == nil && r != nil {
					n.log.Warn("renew transition log lease failed", "err", err)
				}
				if now.Sub(held) >= lease {
					r = nil // another node may hold it by now
				}
			case !leading:
				if r != nil {
					n.log.Info("transition log read by another node now")
				}
				r = nil
			case r == nil:
				r = n.newTransitionReader(progress)
				n.log.Debug("reading the transition log", "from", r.after)
				fallthrough
			default:
				if done != "" {
					r.recorded = done
				}
				held = now
			}
		}
		if r == nil {
			sleep(ctx, lease/3)
			continue
		}
		// Wait for new entries, but not past the moment something held
		// may be due or the lease needs renewing.
		if err := r.read(ctx, tl, min(transitionBlock, lease/3)); err != nil && ctx.Err() == nil {
			if !errors.Is(err, broker.ErrUnavailable) {
				n.log.Warn("read transition log failed", "err", err)
			}
			sleep(ctx, transitionBlock) // Redis is away: do not spin
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// readEntry is a transition read from the log, with its entry's ID.
type readEntry struct {
	id string
	t  transition
}

// transitionReader reads the log for the node while it holds the lease.
type transitionReader struct {
	n   *Node
	buf *reorder.Buffer[readEntry]
	// after is the ID of the last entry read; done that of the last
	// entry before which (and including which) every entry was told;
	// recorded the done last recorded in the log.
	after, done, recorded string
	// unsettled are the IDs read and not yet in done, in order; told
	// says which of them were told.
	unsettled []string
	told      map[string]bool
}

func (n *Node) newTransitionReader(progress string) *transitionReader {
	if progress == "" {
		progress = "0"
	}
	return &transitionReader{
		n:     n,
		buf:   reorder.New[readEntry](transitionWait, transitionGap, transitionForget),
		after: progress, done: progress, recorded: progress,
		told: make(map[string]bool),
	}
}

// read reads what the log has after r.after, waiting up to block for
// something when it has nothing, and tells what is due.
func (r *transitionReader) read(ctx context.Context, tl transitionLog, block time.Duration) error {
	for {
		entries, err := tl.ReadTransitions(ctx, r.after, transitionBatch, block)
		if err != nil {
			return err
		}
		block = 0
		if h := r.n.trans.testHookRead; h != nil {
			h(len(entries))
		}
		now := time.Now()
		for _, e := range entries {
			r.after = e.ID
			r.unsettled = append(r.unsettled, e.ID)
			var t transition
			if err := json.Unmarshal(e.Data, &t); err != nil || t.Channel == "" {
				r.n.log.Warn("bad entry in the transition log: skipped", "id", e.ID)
				r.told[e.ID] = true
				continue
			}
			key := "u"
			if t.Occupancy {
				key = "o"
			}
			r.buf.Add(reorder.Event[readEntry]{Group: t.Channel, Key: key, Seq: t.Seq, Source: t.Node, Value: readEntry{e.ID, t}}, now)
		}
		r.tell(r.buf.Ready(now))
		if len(entries) < transitionBatch {
			return nil
		}
	}
}

// tell tells the listeners the transitions of events, in order, and
// advances done past the entries told.
func (r *transitionReader) tell(events []reorder.Event[readEntry]) {
	for _, e := range events {
		t := e.Value.t
		r.told[e.Value.id] = true
		if t.Occupancy {
			r.n.hearOccupancy(t.Channel, t.In)
		} else {
			r.n.hearUser(t.Channel, t.In, t.Info)
		}
	}
	i := 0
	for ; i < len(r.unsettled) && r.told[r.unsettled[i]]; i++ {
		delete(r.told, r.unsettled[i])
		r.done = r.unsettled[i]
	}
	r.unsettled = r.unsettled[i:]
}

// finish, as the node stops, reads what is left (the node's own last
// transitions, appended by now), tells everything held without waiting
// for what is missing, records the progress and gives the lease up.
func (r *transitionReader) finish(tl transitionLog, lease time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := r.read(ctx, tl, 0); err != nil {
		r.n.log.Warn("read transition log failed", "err", err)
	}
	r.tell(r.buf.Flush(time.Now()))
	if _, _, err := tl.LeadTransitions(ctx, r.n.life.entry.Client, lease, r.done); err != nil {
		r.n.log.Warn("record transition log progress failed", "err", err)
	}
	if err := tl.ResignTransitions(ctx, r.n.life.entry.Client); err != nil {
		r.n.log.Warn("resign transition log lease failed", "err", err)
	}
}
