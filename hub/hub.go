// Package hub holds a node's local fan-out: which local subscribers listen to
// which channel, and the broadcast that hands one event to all of them.
//
// The hub encodes an event at most once per wire format, however many
// subscribers receive it, and never blocks on a subscriber nor writes to a
// connection: Subscriber.Deliver only queues, through the broadcast's
// outbox.Batch, whose writes the caller makes once it holds no lock.
package hub

import (
	"hash/maphash"
	"sync"

	"github.com/redcast/redcast/outbox"
)

// Subscriber is one local subscription of one channel. Deliver is called with
// the events of the channel in order, from one goroutine at a time per
// channel, while the hub holds a read lock: it must not block, must not
// call back into the hub, and must not write to a connection. It queues
// what it sends through b (outbox.Batch.Push), which the broadcaster
// flushes after it let go of its locks, and reports whether it queued a
// message (not when it skipped the event, for example a sender's own
// publication, or held it back).
type Subscriber interface {
	Deliver(ev *Event, b *outbox.Batch) bool
}

const numShards = 64

// Hub maps channels to their local subscribers. The zero value is not usable;
// call New. All methods are safe for concurrent use.
type Hub struct {
	seed   maphash.Seed
	shards [numShards]shard
}

type shard struct {
	mu       sync.RWMutex
	channels map[string]*subscribers
}

// subscribers are a channel's local subscribers: all of them, which
// receive its publications, and those that asked for its joins and leaves.
// A channel of many subscribers that did not ask costs nothing per join.
type subscribers struct {
	all, joinLeave set
	delta          deltaState
}

// set is a slice for fast iteration plus an index for O(1) removal.
type set struct {
	list  []Subscriber
	index map[Subscriber]int
}

func (s *set) add(sub Subscriber) bool {
	if _, ok := s.index[sub]; ok {
		return false
	}
	if s.index == nil {
		s.index = make(map[Subscriber]int)
	}
	s.index[sub] = len(s.list)
	s.list = append(s.list, sub)
	return true
}

func (s *set) remove(sub Subscriber) bool {
	i, ok := s.index[sub]
	if !ok {
		return false
	}
	end := len(s.list) - 1
	if i != end {
		moved := s.list[end]
		s.list[i] = moved
		s.index[moved] = i
	}
	s.list[end] = nil
	s.list = s.list[:end]
	delete(s.index, sub)
	return true
}

// New returns an empty hub.
func New() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*subscribers)
	}
	return h
}

func (h *Hub) shard(ch string) *shard {
	return &h.shards[maphash.String(h.seed, ch)%numShards]
}

// Add subscribes s to ch: to its publications, and with joinLeave to its
// joins and leaves too. It reports whether s is the channel's first local
// subscriber (the node then subscribes to the channel in the broker), and
// false without change when s is already subscribed.
func (h *Hub) Add(ch string, s Subscriber, joinLeave bool) (first, added bool) {
	sh := h.shard(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	subs := sh.channels[ch]
	if subs == nil {
		subs = &subscribers{}
		sh.channels[ch] = subs
	}
	if !subs.all.add(s) {
		return false, false
	}
	if joinLeave {
		subs.joinLeave.add(s)
	}
	if wantsDelta(s) {
		subs.delta.n++
	}
	return len(subs.all.list) == 1, true
}

// Remove unsubscribes s from ch. It reports whether the channel has no local
// subscriber left (the node then unsubscribes in the broker), and false when s
// was not subscribed. When Remove returns, no Deliver to s for ch is running
// or will start.
func (h *Hub) Remove(ch string, s Subscriber) (last, removed bool) {
	sh := h.shard(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	subs := sh.channels[ch]
	if subs == nil || !subs.all.remove(s) {
		return false, false
	}
	subs.joinLeave.remove(s)
	if wantsDelta(s) {
		if subs.delta.n--; subs.delta.n == 0 {
			subs.delta.last.Store(nil)
		}
	}
	if len(subs.all.list) == 0 {
		delete(sh.channels, ch)
		return true, true
	}
	return false, true
}

// Broadcast delivers ev to the local subscribers of ev.Channel that receive
// it (all of them for a publication, those that asked for a join or leave)
// and returns how many queued a message for it. The subscribers queue what
// they send in b; the caller flushes it (b.Flush) once it holds no lock, or
// wakes it (b.Wake) when it may still hold one.
func (h *Hub) Broadcast(ev *Event, b *outbox.Batch) int {
	sh := h.shard(ev.Channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	subs := sh.channels[ev.Channel]
	if subs == nil {
		return 0
	}
	list := subs.all.list
	if ev.Kind != KindPublication {
		list = subs.joinLeave.list
	} else if subs.delta.n > 0 {
		subs.delta.track(ev)
	}
	queued := 0
	for _, s := range list {
		if s.Deliver(ev, b) {
			queued++
		}
	}
	return queued
}

// NumSubscribers returns how many local subscribers ch has.
func (h *Hub) NumSubscribers(ch string) int {
	sh := h.shard(ch)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if subs := sh.channels[ch]; subs != nil {
		return len(subs.all.list)
	}
	return 0
}

// Channels returns every channel with at least one local subscriber.
func (h *Hub) Channels() []string {
	var out []string
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for ch := range sh.channels {
			out = append(out, ch)
		}
		sh.mu.RUnlock()
	}
	return out
}
