package outbox

import (
	"context"
	"sync"
)

// Batch collects the outboxes that a broadcast queued messages in and that
// need a write, so that they are written once the broadcast let go of its
// locks (nats-server's flushClients is the model). A Batch is used by one
// goroutine at a time: the one that delivers.
type Batch struct {
	list []*Outbox
	// pushed and bytes count the messages queued through Push and their
	// bytes, since the Batch was made or taken from the pool.
	pushed, bytes int
}

var batches = sync.Pool{New: func() any { return new(Batch) }}

// GetBatch returns an empty Batch from a pool; PutBatch gives it back.
func GetBatch() *Batch { return batches.Get().(*Batch) }

// PutBatch returns b, which must be flushed or woken, to the pool.
func PutBatch(b *Batch) {
	b.pushed, b.bytes = 0, 0
	batches.Put(b)
}

// Push queues msg in o (see Outbox.Push) and keeps o for Flush when it
// needs a write. It never blocks and does no I/O.
func (b *Batch) Push(o *Outbox, msg []byte) bool {
	if !o.push(msg, true, b) {
		return false
	}
	b.pushed++
	b.bytes += len(msg)
	return true
}

// Len returns how many outboxes wait for a flush.
func (b *Batch) Len() int { return len(b.list) }

// Pushed returns how many messages Push queued, and their bytes, since
// the Batch was made or taken from the pool: what a broadcast queued is
// the difference between the counts after it and before. (A message
// pushed to an outbox that is closing counts too: Push took it.)
func (b *Batch) Pushed() (msgs, bytes int) { return b.pushed, b.bytes }

// Flush writes the outboxes pushed to since the last Flush: from the
// calling goroutine (see Outbox.Flush) when there are at most DirectFanout
// of them, by waking their writers otherwise. Call it holding no lock.
func (b *Batch) Flush() { b.flush(len(b.list) <= DirectFanout) }

// Wake wakes the writers of the outboxes pushed to, writing nothing from
// the calling goroutine: the end of a delivery made under locks.
func (b *Batch) Wake() { b.flush(false) }

func (b *Batch) flush(direct bool) {
	for i, o := range b.list {
		if direct {
			o.Flush()
		} else {
			o.wake()
		}
		b.list[i] = nil
	}
	b.list = b.list[:0]
}

type batchKey struct{}

// NewContext returns a context carrying b: a goroutine that delivers
// broadcasts through code it does not own (a broker that calls back under
// its locks) passes the context down, and the deliveries leave their
// writes in b for it to flush once it holds no lock.
func NewContext(ctx context.Context, b *Batch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

// FromContext returns the Batch ctx carries, or nil.
func FromContext(ctx context.Context) *Batch {
	b, _ := ctx.Value(batchKey{}).(*Batch)
	return b
}
