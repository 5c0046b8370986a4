package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/rueidis"
)

// reconcile sends the unsubscribe and subscribe commands that requests
// since the last call need, then confirms the new subscriptions and has
// channels subscribed again filled from history.
func (s *subscriptions) reconcile(ctx context.Context) error {
	s.mu.Lock()
	unsub := make(map[*link][]string)
	for _, ch := range s.stale {
		if l := s.on[ch]; l != nil && s.want[ch] == nil {
			delete(s.on, ch) // before the command: its confirmation is not a drop
			if !l.down {
				unsub[l] = append(unsub[l], ch)
			}
		}
	}
	s.stale = s.stale[:0]
	sub := make(map[*link][]string)
	var (
		confirm, again, keep []string
		seen                 = make(map[string]struct{}, len(s.pending))
	)
	for _, ch := range s.pending {
		r := s.want[ch]
		if r == nil {
			continue
		}
		if _, dup := seen[ch]; dup {
			continue
		}
		seen[ch] = struct{}{}
		l := s.ownerLocked(ch)
		if l == nil {
			keep = append(keep, ch) // no master (yet), or its link is down
			continue
		}
		if r.confirmed {
			again = append(again, ch)
		} else {
			confirm = append(confirm, ch)
		}
		if cur := s.on[ch]; cur == l {
			continue // subscribed there already
		} else if cur != nil && !cur.down {
			unsub[cur] = append(unsub[cur], ch)
		}
		s.on[ch] = l
		sub[l] = append(sub[l], ch)
	}
	s.pending = keep
	if len(keep) > 0 {
		s.refresh = true
	}
	s.mu.Unlock()

	var firstErr, movedErr error
	for l, chans := range unsub {
		if err := s.send(ctx, l, false, chans, false); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for l, chans := range sub {
		if err := s.send(ctx, l, true, chans, false); err != nil {
			moved := isMoved(err)
			s.mu.Lock()
			for _, ch := range chans {
				// Not subscribed on l any more: the drop hook requeued it.
				if s.on[ch] == l {
					s.requeueChannelLocked(ch)
				}
			}
			s.refresh = true // a MOVED reply, or a master that went away
			if moved {
				s.refreshFrom = l // it knows who owns the slot now
			}
			s.mu.Unlock()
			switch {
			case moved && movedErr == nil:
				movedErr = fmt.Errorf("%w: %w", errMoved, err)
			case !moved && firstErr == nil:
				firstErr = err
			}
		}
	}
	s.confirm(ctx, confirm)
	s.mu.Lock()
	for _, ch := range again {
		if s.on[ch] != nil {
			s.b.workerFor(ch).markDirty(ch)
		}
	}
	s.mu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	if movedErr != nil {
		return movedErr
	}
	if len(keep) > 0 {
		return unavailable("subscribe", errors.New("no master for some channels"))
	}
	return nil
}

// confirm notes each newly subscribed channel's position, so that a later
// outage can be filled from history even if nothing was delivered by
// then, and lets its Subscribe call return. Channels that were not
// subscribed after all (the command failed) are left to fail.
func (s *subscriptions) confirm(ctx context.Context, chans []string) {
	s.mu.Lock()
	reqs := make([]*subRequest, 0, len(chans))
	calls := make([]historyCall, 0, len(chans))
	for _, ch := range chans {
		if r := s.want[ch]; r != nil && !r.confirmed && s.on[ch] != nil {
			reqs = append(reqs, r)
			calls = append(calls, historyCall{channel: ch})
		}
	}
	s.mu.Unlock()
	if len(calls) == 0 {
		return
	}
	results, errs := s.b.historyMany(ctx, calls)
	// The floors first, without s.mu: setFloor waits for a handler call
	// in progress, and the read loop needs s.mu.
	for i, c := range calls {
		if errs[i] == nil {
			s.b.workerFor(c.channel).setFloor(c.channel, reqs[i], results[i].Position)
		}
	}
	s.mu.Lock()
	failed := false
	for i, c := range calls {
		r := reqs[i]
		if s.want[c.channel] != r || r.confirmed {
			continue // unsubscribed or abandoned meanwhile
		}
		if errs[i] != nil {
			s.dropLocked(c.channel, r, errs[i]) // and unsubscribe in the next round
			failed = true
			continue
		}
		r.confirmed = true
		close(r.done)
	}
	s.mu.Unlock()
	if failed {
		s.wakeRun()
	}
}

// send subscribes to (or unsubscribes from) channels on a link, at most
// SubscribeBatch channels per round trip. On a Cluster, one SSUBSCRIBE
// names channels of one slot only, so a round trip pipelines a command per
// slot. A command returns once Redis executed it: Redis subscribes all
// channels of a command before it answers, so every publication made
// afterwards reaches this connection. Unless raw, chans are the broker's
// channels rather than pub/sub channel names.
func (s *subscriptions) send(ctx context.Context, l *link, subscribe bool, chans []string, raw bool) error {
	names := chans
	if !raw {
		names = make([]string, len(chans))
		for i, ch := range chans {
			names[i] = s.b.tag(ch)
		}
	}
	groups := [][]string{names}
	if s.b.sharded {
		groups = groupBySlot(names)
	}
	var (
		cmds []rueidis.Completed
		n    int
	)
	flush := func() error {
		if len(cmds) == 0 {
			return nil
		}
		octx, cancel := context.WithTimeout(ctx, s.b.cfg.Timeout)
		defer cancel()
		for _, r := range l.conn.DoMulti(octx, cmds...) {
			if err := r.Error(); err != nil {
				if subscribe {
					return unavailable("subscribe", err)
				}
				return unavailable("unsubscribe", err)
			}
		}
		cmds, n = cmds[:0], 0
		return nil
	}
	batch := s.b.cfg.SubscribeBatch
	for _, g := range groups {
		for start := 0; start < len(g); start += batch {
			part := g[start:min(start+batch, len(g))]
			if n+len(part) > batch {
				if err := flush(); err != nil {
					return err
				}
			}
			cmds = append(cmds, s.command(l, subscribe, part))
			n += len(part)
		}
	}
	return flush()
}

// command builds the subscribe or unsubscribe command of a link.
func (s *subscriptions) command(l *link, subscribe bool, names []string) rueidis.Completed {
	b := l.conn.B()
	switch {
	case s.b.sharded && subscribe:
		return b.Ssubscribe().Channel(names...).Build()
	case s.b.sharded:
		return b.Sunsubscribe().Channel(names...).Build()
	case subscribe:
		return b.Subscribe().Channel(names...).Build()
	default:
		return b.Unsubscribe().Channel(names...).Build()
	}
}
