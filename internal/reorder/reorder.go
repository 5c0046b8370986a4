// Package reorder puts events back in the order they happened when they
// arrive from several sources, each in its own order, interleaved in any
// way: the events of one key are numbered 1, 2, 3... where they happen
// (a counter beside the state they change), and a Buffer hands them on by
// those numbers, waiting a bounded time for a number that is late.
//
// The webhooks of a cluster use it: each node appends the transitions it
// decided (a channel occupied, a user leaving it) to one log, numbered by
// the script that decided them, and the one node that sends webhooks
// reads the log through a Buffer.
package reorder

import "time"

// Event is one event and what orders it.
type Event[T any] struct {
	// Group is what the order holds within: the events of one group are
	// handed on in the order below, those of different groups
	// independently (a channel).
	Group string
	// Key names a numbering within the group (the channel's occupancy,
	// its users), Seq the event's number in it: 1 for the first event of
	// the key, then one more each. Seq 0 orders nothing by number.
	Key string
	Seq uint64
	// Source is where the event came from (a node): the events of one
	// source in a group keep the order they were added in, whatever their
	// keys.
	Source string
	Value  T
}

// Buffer holds events until their turn. Its zero value is not usable: set
// the durations and call New. A Buffer is not safe for concurrent use.
type Buffer[T any] struct {
	// Wait is how long an event waits for events of its key with lower
	// numbers when the Buffer has handed none of its key on yet (it began
	// reading in the middle, or forgot the key).
	Wait time.Duration
	// Gap is how long an event waits for a number that is missing (an
	// event that was lost, or is very late): then it is handed on anyway,
	// and an event that comes later with a lower number too.
	Gap time.Duration
	// Forget is how long the Buffer remembers the last number of a key
	// with no event.
	Forget time.Duration

	groups map[string][]*pending[T]
	last   map[string]handed // by group and key
	n      int               // events held
	swept  time.Time
}

type pending[T any] struct {
	Event[T]
	at time.Time
}

type handed struct {
	seq uint64
	at  time.Time
}

// New returns an empty Buffer with the given durations.
func New[T any](wait, gap, forget time.Duration) *Buffer[T] {
	return &Buffer[T]{Wait: wait, Gap: gap, Forget: forget, groups: make(map[string][]*pending[T]), last: make(map[string]handed)}
}

// Len returns how many events the Buffer holds.
func (b *Buffer[T]) Len() int { return b.n }

// Add adds an event that arrived at now.
func (b *Buffer[T]) Add(e Event[T], now time.Time) {
	b.groups[e.Group] = append(b.groups[e.Group], &pending[T]{Event: e, at: now})
	b.n++
}

// Ready returns the events whose turn came by now, in the order to hand
// them on, and forgets them.
func (b *Buffer[T]) Ready(now time.Time) []Event[T] {
	var out []Event[T]
	for g, q := range b.groups {
		out, q = b.release(out, q, now, false)
		if len(q) == 0 {
			delete(b.groups, g)
		} else {
			b.groups[g] = q
		}
	}
	if now.Sub(b.swept) >= b.Forget {
		b.swept = now
		for k, h := range b.last {
			if now.Sub(h.at) >= b.Forget {
				delete(b.last, k)
			}
		}
	}
	return out
}

// Flush returns every event held, in the best order the Buffer knows
// without waiting (it gives up on missing numbers), and forgets them.
func (b *Buffer[T]) Flush(now time.Time) []Event[T] {
	var out []Event[T]
	for g, q := range b.groups {
		out, _ = b.release(out, q, now, true)
		delete(b.groups, g)
	}
	return out
}

// release appends to out the events of one group's queue q that may go,
// and returns the rest of q. An event may go when it is its key's next
// number and no earlier event of its source waits; when none may, the
// oldest goes once it waited Gap (or at once with force).
func (b *Buffer[T]) release(out []Event[T], q []*pending[T], now time.Time, force bool) ([]Event[T], []*pending[T]) {
	for len(q) > 0 {
		i := b.next(q, now, force)
		if i < 0 {
			if !force && now.Sub(q[0].at) < b.Gap {
				break
			}
			i = 0
		}
		e := q[i]
		if e.Seq != 0 {
			// A late number handed on after a gap was given up on does
			// not set the key back; a 1 is the numbering beginning again.
			k := e.Group + "\x00" + e.Key
			if h, ok := b.last[k]; !ok || e.Seq == 1 || e.Seq > h.seq {
				b.last[k] = handed{seq: e.Seq, at: now}
			} else {
				b.last[k] = handed{seq: h.seq, at: now}
			}
		}
		out = append(out, e.Event)
		q = append(q[:i], q[i+1:]...)
		b.n--
	}
	return out, q
}

// next returns the index in q of the first event that may go, or -1;
// with force, events of a key none of which was handed on need not wait.
func (b *Buffer[T]) next(q []*pending[T], now time.Time, force bool) int {
	var blocked map[string]bool // sources with an earlier event waiting
	for i, e := range q {
		if blocked[e.Source] {
			continue
		}
		if b.due(q, e, now, force) {
			return i
		}
		if blocked == nil {
			blocked = make(map[string]bool)
		}
		blocked[e.Source] = true
	}
	return -1
}

// due reports whether e is its key's next number: the one after the last
// handed on, or one not above it (the numbering began again, or the event
// was handed on before and comes again); with no number handed on, 1, or
// the lowest held once it waited Wait (at once with force).
func (b *Buffer[T]) due(q []*pending[T], e *pending[T], now time.Time, force bool) bool {
	if e.Seq == 0 {
		return true
	}
	if h, ok := b.last[e.Group+"\x00"+e.Key]; ok {
		return e.Seq <= h.seq+1
	}
	if e.Seq == 1 {
		return true
	}
	if !force && now.Sub(e.at) < b.Wait {
		return false
	}
	for _, o := range q {
		if o != e && o.Key == e.Key && o.Seq != 0 && o.Seq < e.Seq {
			return false
		}
	}
	return true
}
