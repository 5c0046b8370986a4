package memory

import (
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// idempotencyKeys are the idempotency keys of one channel's recent
// publications (see broker.PublishOptions.IdempotencyKey), guarded by the
// stream's lock. order holds the keys oldest first, so that the expired
// ones at its front are dropped on every idempotent publish at O(1) each;
// with TTLs that differ between publishes some expire out of order, and
// the cleanup sweep (expire, every CleanupInterval) drops those.
type idempotencyKeys struct {
	byKey map[string]keyEntry
	order []string
}

// keyEntry is the position a key's publication got, kept until expires
// (Unix ns).
type keyEntry struct {
	pos     protocol.StreamPosition
	expires int64
}

func (k *idempotencyKeys) empty() bool { return len(k.byKey) == 0 }

// idempotent reports whether a publish with key (empty: none) was made
// already, with the position it got.
func (s *stream) idempotent(key string, now int64) (protocol.StreamPosition, bool) {
	if key == "" {
		return protocol.StreamPosition{}, false
	}
	s.keys.dropExpiredFront(now)
	e, ok := s.keys.byKey[key]
	if !ok || e.expires <= now {
		return protocol.StreamPosition{}, false
	}
	return e.pos, true
}

// remember keeps the key of a publish made at now with position pos.
func (s *stream) remember(opts broker.PublishOptions, pos protocol.StreamPosition, now time.Time) {
	if opts.IdempotencyKey == "" {
		return
	}
	ttl := opts.IdempotencyTTL
	if ttl <= 0 {
		ttl = broker.DefaultIdempotencyTTL
	}
	if s.keys.byKey == nil {
		s.keys.byKey = make(map[string]keyEntry)
	}
	// An expired entry of the same key may still be in order: the key then
	// appears twice there, and dropExpiredFront drops it from the map only
	// when the entry it finds has expired.
	s.keys.byKey[opts.IdempotencyKey] = keyEntry{pos: pos, expires: now.Add(ttl).UnixNano()}
	s.keys.order = append(s.keys.order, opts.IdempotencyKey)
	s.keys.bound()
}

// MaxIdempotencyKeys is how many idempotency keys the memory broker keeps
// per channel: past it the oldest are forgotten before their window ends,
// so that a client publishing a new key each time holds a bounded amount
// of memory however long the window.
const MaxIdempotencyKeys = 10000

// bound forgets the oldest keys while order holds more than
// MaxIdempotencyKeys.
func (k *idempotencyKeys) bound() {
	n := 0
	for len(k.order)-n > MaxIdempotencyKeys {
		// A key remembered twice (again after its window ended) is
		// forgotten at its first place: early, as the bound allows.
		delete(k.byKey, k.order[n])
		n++
	}
	k.compact(n)
}

// dropExpiredFront drops the expired keys at the front of order.
func (k *idempotencyKeys) dropExpiredFront(now int64) {
	n := 0
	for n < len(k.order) {
		key := k.order[n]
		e, ok := k.byKey[key]
		if ok && e.expires > now {
			break
		}
		if ok {
			delete(k.byKey, key)
		}
		n++
	}
	k.compact(n)
}

// expire drops every expired key.
func (k *idempotencyKeys) expire(now int64) {
	if len(k.order) == 0 {
		return
	}
	for key, e := range k.byKey {
		if e.expires <= now {
			delete(k.byKey, key)
		}
	}
	kept := k.order[:0]
	for _, key := range k.order {
		if _, ok := k.byKey[key]; ok {
			kept = append(kept, key)
		}
	}
	clear(k.order[len(kept):])
	k.order = kept
	if len(k.order) == 0 {
		k.byKey, k.order = nil, nil
	}
}

// compact drops the first n keys of order.
func (k *idempotencyKeys) compact(n int) {
	switch {
	case n == 0:
	case n == len(k.order):
		k.order = nil
		if len(k.byKey) == 0 {
			k.byKey = nil
		}
	default:
		clear(k.order[:n])
		k.order = k.order[n:]
	}
}
