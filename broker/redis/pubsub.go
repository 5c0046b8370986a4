package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
)

// subscriptions owns the node's pub/sub connections, its links: one on a
// standalone Redis or behind Sentinel (SUBSCRIBE), one per master on a
// Cluster (SSUBSCRIBE, each channel on the master that owns its slot). A
// single goroutine (run) sends every subscribe and unsubscribe command, so
// commands for one channel are never reordered, and requests that arrive
// while it is busy are sent together: a burst of thousands of Subscribe
// calls costs a few commands.
//
// When a link breaks, run forgets it, waits (exponential backoff with
// jitter), reads the Cluster topology again, opens the links it is missing,
// subscribes their channels again and has the workers fill what was
// published meanwhile from history. When a master stops owning a channel's
// slot (a failover or a slot migration), Redis unsubscribes the channel
// itself; run then does the same for that channel alone.
type subscriptions struct {
	b    *Broker
	kick chan struct{} // wakes run; capacity 1

	firstAttempt chan struct{} // closed after the first connection attempt
	firstErr     error         // its error, set before firstAttempt is closed

	topo *topology // the Cluster's, read by run only; nil elsewhere

	mu      sync.Mutex
	ready   bool                   // every link up, every wanted channel subscribed
	want    map[string]*subRequest // channels the node is subscribed (or subscribing) to
	links   map[string]*link       // by master address; "" for the one link outside a Cluster
	on      map[string]*link       // the link a channel is subscribed (or being subscribed) on
	pending []string               // channels to subscribe on their owner's link
	stale   []string               // channels to unsubscribe from
	refresh bool                   // the Cluster topology must be read again
	// refreshFrom, when set, is the link whose node dropped channels by
	// itself: the node that lost a slot knows who has it now, when others
	// may not have heard yet.
	refreshFrom *link
}

// subRequest is a channel the node subscribed to.
type subRequest struct {
	done      chan struct{} // closed when confirmed or failed
	err       error         // why it failed; set before done is closed
	confirmed bool
}

// link is one pub/sub connection.
type link struct {
	addr   string
	client rueidis.Client // the link's own client to its master on a Cluster; nil elsewhere
	conn   rueidis.DedicatedClient
	down   bool                   // set (under subscriptions.mu) when the connection broke
	probe  atomic.Pointer[string] // the link's probe channel
	token  string                 // the probe token on its way, or ""; under subscriptions.mu
	// probeMoved (under subscriptions.mu) says that Redis dropped the
	// probe channel (its slot moved to another master): the link needs a
	// new one, and is not judged by the probe until it has it.
	probeMoved bool
}

// probeName returns the link's probe channel.
func (l *link) probeName() string { return *l.probe.Load() }

func newSubscriptions(b *Broker) *subscriptions {
	return &subscriptions{
		b:            b,
		kick:         make(chan struct{}, 1),
		firstAttempt: make(chan struct{}),
		want:         make(map[string]*subRequest),
		links:        make(map[string]*link),
		on:           make(map[string]*link),
		refresh:      true,
	}
}

func (s *subscriptions) isReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

func (s *subscriptions) wakeRun() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// subscribe queues the channel for run and waits until Redis confirmed it.
func (s *subscriptions) subscribe(ctx context.Context, ch string) error {
	s.mu.Lock()
	if !s.ready {
		s.mu.Unlock()
		return fmt.Errorf("redis: subscribe: %w: not connected", broker.ErrUnavailable)
	}
	r := s.want[ch]
	if r == nil {
		r = &subRequest{done: make(chan struct{})}
		s.want[ch] = r
		s.pending = append(s.pending, ch)
		s.b.workerFor(ch).add(ch, r)
	}
	s.mu.Unlock()
	s.wakeRun()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return s.abandon(ctx, ch, r)
	}
}

// abandon undoes a subscription whose caller gave up before it was
// confirmed. If it was confirmed meanwhile, it stays and abandon returns
// nil.
func (s *subscriptions) abandon(ctx context.Context, ch string, r *subRequest) error {
	s.mu.Lock()
	if r.confirmed {
		s.mu.Unlock()
		return nil
	}
	s.dropLocked(ch, r, ctx.Err())
	s.mu.Unlock()
	s.b.workerFor(ch).quiesce()
	return ctx.Err()
}

// unsubscribe stops delivery of the channel now and queues its
// unsubscribe command. It returns once the handler is not called for the
// channel any more (after a call in progress), without holding s.mu
// meanwhile: the read loop needs it.
func (s *subscriptions) unsubscribe(ch string) {
	s.mu.Lock()
	r := s.want[ch]
	if r == nil {
		s.mu.Unlock()
		return
	}
	s.dropLocked(ch, r, fmt.Errorf("redis: subscribe %q: unsubscribed meanwhile", ch))
	s.mu.Unlock()
	s.wakeRun()
	s.b.workerFor(ch).quiesce()
}

// dropLocked forgets a wanted channel, failing its request with err if it
// was not confirmed yet, and queues an unsubscribe command if needed. The
// worker starts no handler call for it afterwards; one in progress may
// end later (see worker.quiesce).
func (s *subscriptions) dropLocked(ch string, r *subRequest, err error) {
	if s.want[ch] != r {
		return
	}
	delete(s.want, ch)
	s.b.workerFor(ch).remove(ch, r)
	if !r.confirmed {
		r.err = err
		close(r.done)
	}
	if s.on[ch] != nil {
		s.stale = append(s.stale, ch)
	}
}

// run owns the links until ctx ends.
func (s *subscriptions) run(ctx context.Context) {
	defer s.shutdown()
	delay := s.b.cfg.MinReconnectDelay
	first := true
	for {
		err := s.sync(ctx)
		if first {
			s.firstErr, first = err, false
			close(s.firstAttempt)
		}
		if ctx.Err() != nil {
			return // closed: shutdown fails what waits
		}
		if err == nil {
			delay = s.b.cfg.MinReconnectDelay
			select {
			case <-ctx.Done():
				return
			case <-s.kick:
			}
			continue
		}
		s.failed(err)
		// Equal jitter: wait between delay/2 and delay.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(2*delay, s.b.cfg.MaxReconnectDelay)
		if h := s.b.testHookReconnect; h != nil {
			h()
		}
	}
}

// errLinkLost makes run back off before it connects again.
var errLinkLost = unavailable("pub/sub connection lost", nil)

// errMoved is what reconcile returns when a master refused a subscription
// with MOVED: a slot moved and the topology is stale, which the broker
// does not hear of when it had no channel in that slot.
var errMoved = errors.New("slot moved")

// maxMovedRounds is how often sync reads the topology again and retries
// after MOVED replies before it gives up as for any other error (the
// nodes may disagree for a moment while a slot changes hands).
const maxMovedRounds = 3

// sync brings the links in line with what is wanted: it forgets broken
// links (and returns errLinkLost, so that run backs off first), reads the
// Cluster topology if needed, opens missing links, and sends the
// unsubscribe and subscribe commands that requests since the last call
// need; after a MOVED reply it does the last three again at once. The
// broker is ready when it returns nil.
func (s *subscriptions) sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.forgetBroken() {
		return errLinkLost
	}
	for round := 1; ; round++ {
		if err := s.openLinks(ctx); err != nil {
			return err
		}
		err := s.reconcile(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, errMoved) || round == maxMovedRounds {
			return err
		}
	}
	if err := s.moveProbes(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.links {
		if l.down {
			s.ready = false
			return errLinkLost
		}
	}
	s.ready = true
	return nil
}

// forgetBroken closes the links whose connection broke and queues their
// channels to be subscribed again. It reports whether there were any.
func (s *subscriptions) forgetBroken() bool {
	s.mu.Lock()
	var broken []*link
	for addr, l := range s.links {
		if l.down {
			broken = append(broken, l)
			delete(s.links, addr)
		}
	}
	if len(broken) > 0 {
		s.ready, s.refresh, s.refreshFrom = false, true, nil
		s.requeueLocked(func(l *link) bool { return l.down })
	}
	s.mu.Unlock()
	for _, l := range broken {
		l.close()
	}
	return len(broken) > 0
}

// requeueLocked forgets the subscriptions on links that match and queues
// the wanted channels among them to be subscribed again.
func (s *subscriptions) requeueLocked(match func(*link) bool) {
	for ch, l := range s.on {
		if match(l) {
			delete(s.on, ch)
			if s.want[ch] != nil {
				s.pending = append(s.pending, ch)
			}
		}
	}
}

// openLinks reads the Cluster topology if needed, closes the links to
// nodes that are no longer masters (their channels are subscribed again
// elsewhere) and opens a link to every master that has none (or the one
// link outside a Cluster).
func (s *subscriptions) openLinks(ctx context.Context) error {
	wanted := []string{""}
	if s.b.sharded {
		s.mu.Lock()
		refresh := s.refresh || s.topo == nil
		from := s.b.client
		if l := s.refreshFrom; l != nil && !l.down && s.links[l.addr] == l {
			from = l.client
		}
		s.refresh, s.refreshFrom = false, nil
		s.mu.Unlock()
		if refresh {
			t, err := s.b.readTopology(ctx, from)
			if err != nil {
				s.mu.Lock()
				s.refresh = true
				s.mu.Unlock()
				return err
			}
			s.topo = t
			s.moveChannels()
		}
		wanted = s.topo.masters
	}
	var gone []*link
	s.mu.Lock()
	keep := make(map[string]bool, len(wanted))
	for _, addr := range wanted {
		keep[addr] = true
	}
	for addr, l := range s.links {
		if !keep[addr] {
			gone = append(gone, l)
			delete(s.links, addr)
		}
	}
	if len(gone) > 0 {
		s.requeueLocked(func(l *link) bool { return !keep[l.addr] })
	}
	var missing []string
	for _, addr := range wanted {
		if s.links[addr] == nil {
			missing = append(missing, addr)
		}
	}
	s.mu.Unlock()
	for _, l := range gone {
		l.close()
	}
	for _, addr := range missing {
		l, err := s.open(ctx, addr)
		if err != nil {
			s.mu.Lock()
			s.refresh = true // it may be a master no more
			s.mu.Unlock()
			return err
		}
		s.mu.Lock()
		s.links[addr] = l
		s.mu.Unlock()
	}
	return nil
}

// moveChannels queues the channels subscribed on a link that no longer
// owns their slot (after s.topo changed) to be moved.
func (s *subscriptions) moveChannels() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch, l := range s.on {
		if addr, _ := s.topo.master(s.b.tag(ch)); addr != l.addr {
			delete(s.on, ch)
			if s.want[ch] != nil {
				s.pending = append(s.pending, ch)
			}
		}
	}
}

// open opens a link to the master at addr ("" for the one link outside a
// Cluster). Its hooks route messages to the workers, note when Redis drops
// a subscription by itself, and mark the link down when its connection
// breaks.
func (s *subscriptions) open(ctx context.Context, addr string) (*link, error) {
	l := &link{addr: addr}
	probe := s.probeChannel(addr)
	l.probe.Store(&probe)
	if s.b.sharded {
		opt := s.b.opt
		opt.InitAddress = []string{addr}
		opt.ForceSingleClient = true
		c, err := rueidis.NewClient(opt)
		if err != nil {
			return nil, unavailable("connect pub/sub to "+addr, err)
		}
		l.client = c
		l.conn, _ = c.Dedicate()
	} else {
		l.conn, _ = s.b.client.Dedicate()
	}
	errc := l.conn.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) {
			if m.Channel == l.probeName() {
				s.probed(l, m.Message)
				return
			}
			s.b.route(m)
		},
		OnSubscription: func(m rueidis.PubSubSubscription) { s.dropped(l, m) },
	})
	// ROLE makes sure the connection is up, and to a master: a Cluster
	// topology read from a node that has not heard of a failover yet
	// names a master that is a replica now, which would accept
	// SSUBSCRIBE, and Sentinel's master may have just changed. Then the
	// link subscribes to its probe channel.
	octx, cancel := context.WithTimeout(ctx, s.b.cfg.Timeout)
	defer cancel()
	if s.b.followsMaster() {
		role, err := l.conn.Do(octx, l.conn.B().Role().Build()).ToArray()
		var kind string
		if err == nil && len(role) > 0 {
			kind, err = role[0].ToString()
		}
		if err == nil && kind != "master" {
			err = fmt.Errorf("%s is a %s, not a master", addr, kind)
		}
		if err != nil {
			l.close()
			return nil, unavailable("connect pub/sub", err)
		}
	}
	if err := s.send(ctx, l, true, []string{probe}, true); err != nil {
		l.close()
		return nil, err
	}
	s.b.wg.Go(func() {
		select {
		case <-errc:
			s.linkDown(l)
		case <-ctx.Done():
		}
	})
	return l, nil
}

func (l *link) close() {
	l.conn.Close()
	if l.client != nil {
		l.client.Close()
	}
}

// linkDown marks a link whose connection broke.
func (s *subscriptions) linkDown(l *link) {
	s.mu.Lock()
	if s.links[l.addr] == l && !l.down {
		l.down, s.ready = true, false
		s.b.reconnects.Add(1)
	}
	s.mu.Unlock()
	s.wakeRun()
}

// dropped is the links' OnSubscription hook: an unsubscription of a
// channel still subscribed on the link was Redis's own doing (the slot
// moved to another master), so the channel is subscribed again where it
// is now, and what it missed read from history.
func (s *subscriptions) dropped(l *link, m rueidis.PubSubSubscription) {
	if m.Kind != "sunsubscribe" && m.Kind != "unsubscribe" {
		return
	}
	if m.Channel == l.probeName() {
		// The probe channel's slot moved: give the link another one.
		s.mu.Lock()
		l.probeMoved, l.token = true, ""
		s.refresh, s.refreshFrom = true, l
		s.mu.Unlock()
		s.wakeRun()
		return
	}
	ch, ok := s.b.channelOf(m.Channel)
	if !ok {
		return
	}
	s.mu.Lock()
	if s.on[ch] != l {
		s.mu.Unlock()
		return // our own unsubscription
	}
	delete(s.on, ch)
	if s.want[ch] != nil {
		s.pending = append(s.pending, ch)
	}
	s.refresh, s.refreshFrom = true, l
	s.mu.Unlock()
	s.wakeRun()
}

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
				if s.on[ch] == l {
					delete(s.on, ch)
				}
				if s.want[ch] != nil {
					s.pending = append(s.pending, ch)
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

// isMoved reports whether err is, or wraps, a MOVED reply.
func isMoved(err error) bool {
	var rerr *rueidis.RedisError
	if !errors.As(err, &rerr) {
		return false
	}
	_, moved := rerr.IsMoved()
	return moved
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

// failed records that sync failed: the broker is not ready, and Subscribe
// calls still waiting fail with err. Confirmed channels stay wanted and
// are subscribed again once the links are back.
func (s *subscriptions) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = false
	for ch, r := range s.want {
		if !r.confirmed {
			s.dropLocked(ch, r, err)
		}
	}
}

// shutdown closes the links and fails Subscribe calls still waiting when
// run returns.
func (s *subscriptions) shutdown() {
	s.mu.Lock()
	s.ready = false
	for ch, r := range s.want {
		if !r.confirmed {
			s.dropLocked(ch, r, errClosed)
		}
	}
	links := make([]*link, 0, len(s.links))
	for addr, l := range s.links {
		links = append(links, l)
		delete(s.links, addr)
	}
	s.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// unavailable wraps err (which may be nil) as broker.ErrUnavailable.
func unavailable(op string, err error) error {
	if err == nil {
		return fmt.Errorf("redis: %s: %w", op, broker.ErrUnavailable)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, broker.ErrUnavailable, err)
}
