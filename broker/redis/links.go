package redis

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/redis/rueidis"
)

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
		s.requeueLocked(func(_ string, l *link) bool { return l.down })
	}
	s.mu.Unlock()
	for _, l := range broken {
		l.close()
	}
	return len(broken) > 0
}

// requeueLocked forgets the subscriptions that match (a channel and the
// link it is subscribed on) and queues the wanted channels among them to
// be subscribed again (see requeueChannelLocked).
func (s *subscriptions) requeueLocked(match func(ch string, l *link) bool) {
	for ch, l := range s.on {
		if match(ch, l) {
			s.requeueChannelLocked(ch)
		}
	}
}

// requeueChannelLocked forgets the channel's subscription, whichever link
// it is on, and queues the channel to be subscribed again (on the link of
// its owner then) if the node still wants it. Every path that finds a
// subscription lost or misplaced goes through here.
func (s *subscriptions) requeueChannelLocked(ch string) {
	delete(s.on, ch)
	if s.want[ch] != nil {
		s.pending = append(s.pending, ch)
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
		s.requeueLocked(func(_ string, l *link) bool { return !keep[l.addr] })
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
	s.requeueChannelLocked(ch)
	s.refresh, s.refreshFrom = true, l
	s.mu.Unlock()
	s.wakeRun()
}
