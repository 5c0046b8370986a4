package redcast

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// This file tells listeners (webhooks) the transitions of the cluster,
// each once: a channel occupied (its first subscriber anywhere) or vacated
// (its last one gone), a user entering or leaving a channel with presence,
// and a connection of this node opened or closed.
//
// Occupancy is presence whose clients are nodes: a node with a local
// subscriber of a tracked channel has an entry in the presence of the
// channel's occupancy channel (occupancyChannel), all entries of the same
// user, so that the presence manager's PresenceChange.User reports the
// first node entering (occupied) and the last one leaving (vacated),
// decided atomically whichever nodes call at once. The node adds its entry
// on its first local subscriber and removes it after its last one left
// (after that subscriber's own leave, so that a presence channel's last
// member_removed comes before channel_vacated), both under the channel's
// chanLock, so that one node's adds and removes of a channel are made in
// order.
//
// Entries that expire are refreshed like client presence; the entries of a
// crashed node expire, and whoever expires them reports vacated when they
// were the last. Nodes serving the channel expire its entries; when none
// does any more, the sweep registry (sweepRegistry: a sorted set on Redis)
// lists the channel, and every node sweeps what is due: the channel's
// occupancy and its client presence, so that the crashed node's members
// leave too (presence_leave, member_removed).

// Lifecycle receives the transitions of the cluster (see OnLifecycle). Its
// functions may be called holding the node's locks (a channel's lock for
// Occupancy, a client's for Connection): they must only queue
// (webhook.Target.Send never blocks) and return. Nil functions are not
// called.
type Lifecycle struct {
	// Track selects the channels whose occupancy the node tracks across
	// the cluster (Occupancy hears those only). Tracking costs a presence
	// call on a node's first and last local subscriber of a channel, and
	// a refresh and an expiry of one presence entry per channel and node
	// on the presence manager's timing. Nil tracks none.
	Track func(ch string) bool
	// Occupancy hears a tracked channel occupied (its first subscriber in
	// the cluster) or vacated (its last one gone, or its last node
	// crashed and its entry expired), once per cluster.
	Occupancy func(ch string, occupied bool)
	// User hears a user entering a channel with presence (its first
	// client anywhere in the cluster) or leaving it (its last client), once
	// per cluster. A client without a user is a user of its own.
	User func(ch string, entered bool, info *protocol.ClientInfo)
	// Connection hears a connection of this node's own protocol opened
	// (once connected) or closed, with the code the server closed it with
	// (0 when the client or the network ended it). A node that crashes
	// reports none of its connections closed.
	Connection func(info protocol.ClientInfo, opened bool, code uint16)
}

// OnLifecycle adds a listener of the cluster's transitions. Safe to call
// at any time; transitions before the call are not reported.
func (n *Node) OnLifecycle(l Lifecycle) {
	n.life.mu.Lock()
	defer n.life.mu.Unlock()
	ls := append(slices.Clone(*n.life.listeners.Load()), l)
	n.life.listeners.Store(&ls)
}

// occupancyUser is the user of every occupancy entry; occupancyPrefix,
// which no valid channel name contains, names occupancy channels.
const (
	occupancyUser   = "node"
	occupancyPrefix = "!occupancy!"
)

func occupancyChannel(ch string) string { return occupancyPrefix + ch }

// sweepLimit is the most channels one sweep takes from the registry.
const sweepLimit = 1000

// sweepRegistry is implemented by presence managers shared by nodes that
// may crash (the Redis broker): a cluster-wide list of channels whose
// entries may outlive every node serving them (see package broker/redis).
type sweepRegistry interface {
	MarkSweep(ctx context.Context, channel string) error
	DueSweeps(ctx context.Context, limit int) ([]string, error)
	DoneSweep(ctx context.Context, channel string) error
}

// lifecycle is the node's state of the above.
type lifecycle struct {
	// entry is the node's occupancy entry: a random id of the process.
	entry     *protocol.ClientInfo
	listeners atomic.Pointer[[]Lifecycle]

	mu sync.Mutex // a leaf; guards occupied and writers of listeners
	// occupied are the tracked channels with a local subscriber, each
	// with its subscribers that left the hub and have not settled yet
	// (their leave may still be under way).
	occupied map[string]map[hub.Subscriber]struct{}
}

func newLifecycle() *lifecycle {
	l := &lifecycle{entry: &protocol.ClientInfo{Client: newClientID(), User: occupancyUser}, occupied: make(map[string]map[hub.Subscriber]struct{})}
	l.listeners.Store(&[]Lifecycle{})
	return l
}

// tracking reports whether some listener tracks occupancy: without one,
// nothing marks the sweep registry, and nodes do not read it.
func (n *Node) tracking() bool {
	return slices.ContainsFunc(*n.life.listeners.Load(), Lifecycle.tracksOccupancy)
}

// tracked reports whether some listener tracks ch's occupancy.
func (n *Node) tracked(ch string) bool {
	return slices.ContainsFunc(*n.life.listeners.Load(), func(l Lifecycle) bool { return l.tracks(ch) })
}

// emitOccupancy tells listeners, or the transition log, that a tracked
// channel was occupied or vacated: the change numbered seq of its
// occupancy.
func (n *Node) emitOccupancy(ch string, occupied bool, seq uint64) {
	if !n.logged(transition{Channel: ch, Occupancy: true, In: occupied, Seq: seq}) {
		n.hearOccupancy(ch, occupied)
	}
}

// hearOccupancy tells listeners a tracked channel was occupied or vacated.
func (n *Node) hearOccupancy(ch string, occupied bool) {
	for _, l := range *n.life.listeners.Load() {
		if l.tracks(ch) {
			l.Occupancy(ch, occupied)
		}
	}
}

// tracksOccupancy reports whether l hears occupancy at all, and tracks
// whether it hears ch's.
func (l Lifecycle) tracksOccupancy() bool { return l.Track != nil && l.Occupancy != nil }
func (l Lifecycle) tracks(ch string) bool { return l.tracksOccupancy() && l.Track(ch) }

// userChanged tells listeners, or the transition log, that a user entered
// or left ch (see presenceChanged): the change numbered seq of its users.
func (n *Node) userChanged(ch string, entered bool, info *protocol.ClientInfo, seq uint64) {
	if !slices.ContainsFunc(*n.life.listeners.Load(), func(l Lifecycle) bool { return l.User != nil }) {
		return
	}
	if !n.logged(transition{Channel: ch, In: entered, Seq: seq, Info: info}) {
		n.hearUser(ch, entered, info)
	}
}

// hearUser tells listeners a user entered or left ch.
func (n *Node) hearUser(ch string, entered bool, info *protocol.ClientInfo) {
	for _, l := range *n.life.listeners.Load() {
		if l.User != nil {
			l.User(ch, entered, info)
		}
	}
}

// connectionChanged tells listeners a connection opened or closed.
func (n *Node) connectionChanged(info protocol.ClientInfo, opened bool, code uint16) {
	for _, l := range *n.life.listeners.Load() {
		if l.Connection != nil {
			l.Connection(info, opened, code)
		}
	}
}

// connectionClosed reports c closed, if it had connected.
func (n *Node) connectionClosed(c *Client, code uint16) {
	c.mu.Lock()
	connected, info := c.connected, *c.info
	c.mu.Unlock()
	if connected {
		n.connectionChanged(info, false, code)
	}
}

// occupy records the node in a tracked channel's occupancy, on its first
// local subscriber. The caller holds the channel's chanLock.
func (n *Node) occupy(ctx context.Context, ch string) {
	if !n.tracked(ch) {
		return
	}
	n.life.mu.Lock()
	if n.life.occupied[ch] == nil {
		n.life.occupied[ch] = make(map[hub.Subscriber]struct{})
	}
	n.life.mu.Unlock()
	n.enterOccupancy(ctx, ch)
}

// enterOccupancy adds or refreshes the node's entry; the caller holds the
// channel's chanLock. A failure is retried by the next refresh.
func (n *Node) enterOccupancy(ctx context.Context, ch string) error {
	change, err := n.presence.AddPresence(ctx, occupancyChannel(ch), n.life.entry)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("add occupancy failed", "channel", ch, "err", err)
		}
		return err
	}
	if reg, ok := n.presence.(sweepRegistry); ok {
		if err := reg.MarkSweep(ctx, ch); err != nil && ctx.Err() == nil {
			n.log.Warn("mark sweep failed", "channel", ch, "err", err)
		}
	}
	if change.Client != nil && change.User {
		n.emitOccupancy(ch, true, change.Seq)
	}
	return nil
}

// leaving notes that s left the hub of a tracked channel: the channel is
// not vacated before s settled. The caller holds the channel's chanLock.
func (n *Node) leaving(ch string, s hub.Subscriber) {
	if !n.tracked(ch) {
		return
	}
	n.life.mu.Lock()
	if set := n.life.occupied[ch]; set != nil {
		set[s] = struct{}{}
	}
	n.life.mu.Unlock()
}

// settleOccupancy takes the node out of ch's occupancy when its last local
// subscriber is gone and settled. It is called after each removal of a
// subscriber s from the hub (removeSubscriber): after its leave when it
// unsubscribed, or after a failed subscribe. So a channel's last leaves
// come before channel_vacated even when its last subscribers leave at
// once.
func (n *Node) settleOccupancy(ch string, s hub.Subscriber) {
	if !n.tracked(ch) {
		return // never occupied: free without webhooks
	}
	n.life.mu.Lock()
	_, ok := n.life.occupied[ch]
	n.life.mu.Unlock()
	if !ok {
		return
	}
	lk := n.chanLock(ch)
	lk.Lock()
	defer lk.Unlock()
	empty := n.hub.NumSubscribers(ch) == 0 // stable under the chanLock
	n.life.mu.Lock()
	set, ok := n.life.occupied[ch]
	delete(set, s)
	last := ok && len(set) == 0 && empty
	if last {
		delete(n.life.occupied, ch)
	}
	n.life.mu.Unlock()
	if !last {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	change, err := n.presence.RemovePresence(ctx, occupancyChannel(ch), n.life.entry.Client)
	if err != nil {
		// The entry expires; whoever expires it reports the vacancy.
		n.log.Warn("remove occupancy failed", "channel", ch, "err", err)
		return
	}
	if change.Client != nil && change.User {
		n.emitOccupancy(ch, false, change.Seq)
	}
}

// occupiedList returns the tracked channels with a local subscriber.
func (n *Node) occupiedList() []string {
	n.life.mu.Lock()
	defer n.life.mu.Unlock()
	out := make([]string, 0, len(n.life.occupied))
	for ch := range n.life.occupied {
		out = append(out, ch)
	}
	return out
}

// startLifecycle starts, with startPresence, the goroutines that refresh
// the node's occupancy entries, expire those of the channels it serves,
// and sweep the registry. They stop when ctx ends.
func (n *Node) startLifecycle(ctx context.Context, pe broker.PresenceExpirer, timing broker.PresenceTiming) {
	if tl, ok := pe.(transitionLog); ok {
		n.startTransitions(ctx, tl, timing.TTL)
	}
	n.wg.Go(func() { n.every(ctx, timing.Refresh, n.refreshOccupancy) })
	n.wg.Go(func() {
		n.every(ctx, timing.Expire, func(ctx context.Context) {
			n.expireOccupancy(ctx, pe)
			if reg, ok := n.presence.(sweepRegistry); ok && n.tracking() {
				n.sweep(ctx, pe, reg)
			}
		})
	})
}

// refreshOccupancy refreshes the node's occupancy entries. An entry that
// had expired (and was reported vacated) enters again: occupied. The
// round stops when the presence manager is unavailable (the next one
// tries again), so that an outage does not hold each channel's lock for
// a timeout, one after the other.
func (n *Node) refreshOccupancy(ctx context.Context) {
	for _, ch := range n.occupiedList() {
		actx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		lk := n.chanLock(ch)
		lk.Lock()
		n.life.mu.Lock()
		_, ok := n.life.occupied[ch]
		n.life.mu.Unlock()
		var err error
		if ok {
			err = n.enterOccupancy(actx, ch)
		}
		lk.Unlock()
		cancel()
		if errors.Is(err, broker.ErrUnavailable) || ctx.Err() != nil {
			return
		}
	}
}

// expireOccupancy expires the occupancy entries of the channels the node
// serves: those of crashed nodes.
func (n *Node) expireOccupancy(ctx context.Context, pe broker.PresenceExpirer) {
	for _, ch := range n.occupiedList() {
		if err := n.expireOccupancyOf(ctx, pe, ch); errors.Is(err, broker.ErrUnavailable) {
			return
		}
	}
}

// expireOccupancyOf expires ch's occupancy entries under the channel's
// lock, as refreshOccupancy and subscribes enter it: the node's own entry
// found expired (after an outage) is reported vacated before a refresh
// reports it occupied again, never after.
func (n *Node) expireOccupancyOf(ctx context.Context, pe broker.PresenceExpirer, ch string) error {
	actx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	lk := n.chanLock(ch)
	lk.Lock()
	defer lk.Unlock()
	changes, err := pe.ExpirePresence(actx, occupancyChannel(ch))
	for _, c := range changes {
		if c.User {
			n.log.Debug("occupancy expired", "channel", ch, "node", c.Client.Client)
			n.emitOccupancy(ch, false, c.Seq)
		}
	}
	if err != nil && ctx.Err() == nil {
		n.log.Warn("expire occupancy failed", "channel", ch, "err", err)
	}
	return err
}

// sweep expires the occupancy and the client presence of the channels the
// registry says are due: channels no live node refreshes any more, whose
// crashed nodes' entries no node serving them would expire. Each expired
// entry is reported by the one node that removed it; a channel left
// empty is forgotten.
func (n *Node) sweep(ctx context.Context, pe broker.PresenceExpirer, reg sweepRegistry) {
	chs, err := reg.DueSweeps(ctx, sweepLimit)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("read sweep registry failed", "err", err)
		}
		return
	}
	for _, ch := range chs {
		err := n.sweepChannel(ctx, pe, reg, ch)
		if err != nil && ctx.Err() == nil {
			n.log.Warn("sweep failed", "channel", ch, "err", err)
		}
		if errors.Is(err, broker.ErrUnavailable) || ctx.Err() != nil {
			return // the next round tries again
		}
	}
}

func (n *Node) sweepChannel(ctx context.Context, pe broker.PresenceExpirer, reg sweepRegistry, ch string) error {
	actx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	// Members first, then the channel: member_removed comes before
	// channel_vacated, as when they leave one by one. A member whose
	// entry expires later than its node's occupancy entry (they are
	// refreshed at different moments) holds the channel's vacancy back
	// until a later round removes it.
	opts, nerr := n.policy.Namespace(ch)
	if nerr == nil && opts.Presence {
		leave := func(c broker.PresenceChange) {
			n.log.Debug("presence swept", "channel", ch, "client", c.Client.Client)
			n.presenceChanged(actx, ch, opts, protocol.PushLeave, c)
		}
		if empty, err := drain(actx, pe, ch, leave); err != nil || !empty {
			return err
		}
	}
	vacate := func(c broker.PresenceChange) {
		if c.User {
			n.log.Debug("occupancy swept", "channel", ch, "node", c.Client.Client)
			n.emitOccupancy(ch, false, c.Seq)
		}
	}
	if empty, err := drain(actx, pe, occupancyChannel(ch), vacate); err != nil || !empty {
		return err
	}
	return reg.DoneSweep(actx, ch)
}

// drain removes the expired entries of a presence channel, passing each to
// f, and reports whether none is left. Presence does not show the entries
// that expired since ExpirePresence ran: a second ExpirePresence, after
// Presence found none left, removes those, so that nothing is left behind
// unreported once the channel is forgotten.
func drain(ctx context.Context, pe broker.PresenceExpirer, ch string, f func(broker.PresenceChange)) (bool, error) {
	for round := range 2 {
		changes, err := pe.ExpirePresence(ctx, ch)
		for _, c := range changes {
			f(c)
		}
		if err != nil || round == 1 {
			return err == nil, err
		}
		left, err := pe.Presence(ctx, ch)
		if err != nil || len(left) > 0 {
			return false, err
		}
	}
	return true, nil
}
