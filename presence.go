package redcast

import (
	"context"
	"errors"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// startPresence starts, when the presence manager's entries expire, the
// two goroutines that keep this node's clients in presence and announce
// the leaves of clients whose node died (see broker.PresenceExpirer).
// They stop when ctx ends; n.wg waits for them.
func (n *Node) startPresence(ctx context.Context) {
	pe, ok := n.presence.(broker.PresenceExpirer)
	if !ok {
		return
	}
	timing := pe.PresenceTiming()
	if timing.Refresh <= 0 || timing.Expire <= 0 {
		return
	}
	n.wg.Go(func() { n.every(ctx, timing.Refresh, n.refreshPresence) })
	n.wg.Go(func() { n.every(ctx, timing.Expire, func(ctx context.Context) { n.expirePresence(ctx, pe) }) })
	n.startLifecycle(ctx, pe, timing)
}

// every calls f every interval until ctx ends.
func (n *Node) every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(ctx)
	}
}

// refreshPresence re-adds the presence of every local subscription with
// presence. A client whose entry had expired meanwhile (its refreshes
// failed for longer than the TTL, and a node announced its leave), or
// whose join failed, enters again: its join is announced.
func (n *Node) refreshPresence(ctx context.Context) {
	for _, s := range n.presenceSubs() {
		if !s.live() {
			continue // join adds it, after the subscribe reply
		}
		actx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		n.refreshSub(actx, s)
		cancel()
	}
}

// refreshSub re-adds the presence of s. An add that made the client enter
// is announced (a join) when s is still the client's subscription to the
// channel. Otherwise the client unsubscribed since presenceSubs (its
// RemovePresence came before this add), and the add is undone,
// unannounced. But the client may have subscribed again meanwhile, and
// that subscription's own add (its join, once it is live) may have found
// the entry there and announced nothing: after the undo, a subscription
// that is live again is added and announced here, on its behalf, as if it
// were s. (One not live yet adds itself after the undo.) The client
// would have to resubscribe at each turn to keep this going: after a few
// turns the next refresh repairs what is left.
func (n *Node) refreshSub(ctx context.Context, s *subscription) {
	c := s.client
	current := func() *subscription {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.subs[s.channel]
	}
	for range 4 {
		change, err := n.presence.AddPresence(ctx, s.channel, s.presenceInfo())
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("refresh presence failed", "channel", s.channel, "client", c.ID(), "err", err)
			}
			return
		}
		if change.Client == nil {
			return
		}
		if current() == s {
			n.log.Debug("presence entered again", "channel", s.channel, "client", c.ID())
			n.presenceChanged(ctx, s.channel, s.opts, protocol.PushJoin, change)
			return
		}
		if _, err := n.presence.RemovePresence(ctx, s.channel, c.ID()); err != nil {
			n.log.Warn("remove presence failed", "channel", s.channel, "client", c.ID(), "err", err)
			return
		}
		if s = current(); s == nil || !s.live() {
			return
		}
	}
}

// expirePresence removes the expired clients of every channel with
// presence that this node serves, and announces their leaves. Every node
// serving the channel does the same; the presence manager gives each
// expired client to one of them, so each leave is announced once.
func (n *Node) expirePresence(ctx context.Context, pe broker.PresenceExpirer) {
	channels := make(map[string]auth.Namespace)
	for _, s := range n.presenceSubs() {
		channels[s.channel] = s.opts
	}
	for ch, opts := range channels {
		actx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		changes, err := pe.ExpirePresence(actx, ch)
		for _, c := range changes { // those removed before an error too
			n.log.Debug("presence expired", "channel", ch, "client", c.Client.Client)
			n.presenceChanged(actx, ch, opts, protocol.PushLeave, c)
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.Warn("expire presence failed", "channel", ch, "err", err)
		}
		if errors.Is(err, broker.ErrUnavailable) {
			return // the next round tries every channel again
		}
	}
}

// presenceChanged acts on a client entering (kind protocol.PushJoin) or
// leaving (protocol.PushLeave) channel ch. Every join and leave of the
// cluster passes here once, on the node that made the change: a subscribe,
// an unsubscribe or disconnect, a refresh that re-added an expired client,
// or an expiry. It publishes the join or leave when the namespace has
// join/leave on, for the subscribers that asked for them (each node's hub
// hands it to those only, so a channel where nobody asked costs one broker
// publish per join, not one push per subscriber); change.User (in namespaces with presence) tells whether
// the client's user entered or left too, for per-user events to come.
func (n *Node) presenceChanged(ctx context.Context, ch string, opts auth.Namespace, kind string, change broker.PresenceChange) {
	if change.User {
		// Listeners (webhooks) first, then the clients: what a client
		// does after it saw the change is told after the change.
		entered := kind == protocol.PushJoin
		n.userChanged(ch, entered, change.Client, change.Seq)
		if n.userPresence != nil {
			n.userPresence(ctx, ch, entered, change.Client)
		}
	}
	if !opts.JoinLeave {
		return
	}
	publish := n.broker.PublishJoin
	if kind == protocol.PushLeave {
		publish = n.broker.PublishLeave
	}
	if err := publish(ctx, ch, change.Client); err != nil && ctx.Err() == nil {
		n.log.Warn("publish "+kind+" failed", "channel", ch, "client", change.Client.Client, "err", err)
	}
}

// presenceSubs returns the local subscriptions with presence.
func (n *Node) presenceSubs() []*subscription {
	var out []*subscription
	for _, c := range n.clientList() {
		c.mu.Lock()
		for _, s := range c.subs {
			if s.opts.Presence {
				out = append(out, s)
			}
		}
		c.mu.Unlock()
	}
	return out
}

// live reports whether the subscription has gone live (its reply was
// sent), so that a join announced for it reaches its own client too.
func (s *subscription) live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == subLive
}
