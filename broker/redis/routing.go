package redis

import (
	"errors"

	"github.com/redis/rueidis"
)

// errMoved is what reconcile returns when a master refused a subscription
// with MOVED: a slot moved and the topology is stale, which the broker
// does not hear of when it had no channel in that slot.
var errMoved = errors.New("slot moved")

// maxMovedRounds is how often sync reads the topology again and retries
// after MOVED replies before it gives up as for any other error (the
// nodes may disagree for a moment while a slot changes hands).
const maxMovedRounds = 3

// moveChannels queues the channels subscribed on a link that no longer
// owns their slot (after s.topo changed) to be moved.
func (s *subscriptions) moveChannels() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requeueLocked(func(ch string, l *link) bool {
		addr, _ := s.topo.master(s.b.tag(ch))
		return addr != l.addr
	})
}

// ownerLocked returns the up link a channel belongs on, or nil.
func (s *subscriptions) ownerLocked(ch string) *link {
	addr := ""
	if s.b.sharded {
		var ok bool
		if addr, ok = s.topo.master(s.b.tag(ch)); !ok {
			return nil
		}
	}
	l := s.links[addr]
	if l == nil || l.down {
		return nil
	}
	return l
}

// isMoved reports whether err is, or wraps, a MOVED reply.
func isMoved(err error) bool {
	var rerr *rueidis.RedisError
	if !errors.As(err, &rerr) {
		return false
	}
	_, moved := rerr.IsMoved()
	return moved
}

// groupBySlot splits pub/sub channel names by Cluster slot.
func groupBySlot(names []string) [][]string {
	idx := make(map[uint16]int)
	var groups [][]string
	for _, name := range names {
		slot := slotOf(name)
		i, ok := idx[slot]
		if !ok {
			i = len(groups)
			idx[slot] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], name)
	}
	return groups
}
