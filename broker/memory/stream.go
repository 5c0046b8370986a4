package memory

import (
	"crypto/rand"
	"sort"
	"sync"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// stream is the state of one channel. mu guards every field but channel;
// when a shard's lock is also held, it is taken first.
type stream struct {
	channel string

	mu         sync.Mutex
	epoch      string
	offset     uint64
	pubs       []entry // oldest first; offsets increase
	lastActive int64   // Unix ns of creation, the last publication or unsubscribe
	subscribed bool    // the node is subscribed: deliver, and never forget
	dropped    bool    // removed from its shard: whoever holds it must look up again
	keys       idempotencyKeys
}

// entry is a publication kept in history until expires (Unix ns).
type entry struct {
	pub     *protocol.Publication
	expires int64
}

func newStream(channel string, now int64) *stream {
	return &stream{channel: channel, epoch: newEpoch(), lastActive: now}
}

// newEpoch returns a random name for a new lifetime of a stream.
func newEpoch() string { return rand.Text()[:8] }

func (s *stream) position() protocol.StreamPosition {
	return protocol.StreamPosition{Offset: s.offset, Epoch: s.epoch}
}

// idle reports whether the stream can be forgotten: nobody on this node
// listens, its history is empty and nothing happened for ttl.
func (s *stream) idle(now int64, ttl int64) bool {
	return !s.subscribed && len(s.pubs) == 0 && s.keys.empty() && now-s.lastActive >= ttl
}

// restartIfIdle starts a new epoch when the stream is idle, as if it had
// been forgotten and created again.
func (s *stream) restartIfIdle(now int64, ttl int64) {
	if s.idle(now, ttl) {
		s.epoch, s.offset, s.lastActive = newEpoch(), 0, now
	}
}

// add keeps pub in history, keeping at most size publications.
func (s *stream) add(pub *protocol.Publication, size int, expires int64) {
	if size > 0 {
		s.pubs = append(s.pubs, entry{pub: pub, expires: expires})
	}
	s.trim(max(size, 0))
}

// trim drops the oldest publications beyond size.
func (s *stream) trim(size int) {
	n := len(s.pubs) - size
	if n <= 0 {
		return
	}
	if n == len(s.pubs) {
		s.pubs = nil
		return
	}
	clear(s.pubs[:n]) // let the garbage collector have them
	s.pubs = s.pubs[n:]
}

// expireOldest drops expired publications from the front of history: cheap
// enough for every publish, and complete while a channel's TTL is constant.
func (s *stream) expireOldest(now int64) {
	n := 0
	for n < len(s.pubs) && s.pubs[n].expires <= now {
		n++
	}
	s.trim(len(s.pubs) - n)
}

// expire drops every expired publication, wherever it is.
func (s *stream) expire(now int64) {
	kept := s.pubs[:0]
	for _, e := range s.pubs {
		if e.expires > now {
			kept = append(kept, e)
		}
	}
	clear(s.pubs[len(kept):])
	s.pubs = kept
	if len(s.pubs) == 0 {
		s.pubs = nil
	}
}

// history selects publications per opts; expired ones must be gone already.
func (s *stream) history(opts broker.HistoryOptions) broker.HistoryResult {
	res := broker.HistoryResult{Position: s.position()}
	if opts.Limit == 0 {
		return res
	}
	pubs := s.pubs
	if opts.Since != nil {
		i := sort.Search(len(pubs), func(i int) bool { return pubs[i].pub.Offset > opts.Since.Offset })
		pubs = pubs[i:]
		if opts.Limit > 0 && len(pubs) > opts.Limit {
			pubs = pubs[:opts.Limit]
		}
	} else if opts.Limit > 0 && len(pubs) > opts.Limit {
		pubs = pubs[len(pubs)-opts.Limit:]
	}
	if len(pubs) == 0 {
		return res
	}
	res.Publications = make([]*protocol.Publication, len(pubs))
	for i, e := range pubs {
		res.Publications[i] = e.pub
	}
	return res
}
