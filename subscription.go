package redcast

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// subscription is one client's subscription to one channel: the hub's
// Subscriber for it. It starts in the recovering state, in which live
// publications are buffered while the client's history (recovery or latest
// N) is read; then the reply is queued, the buffer merged by offset, and the
// subscription goes live. Live, it checks that offsets follow each other in
// one epoch, so a client never sees a gap or a duplicate silently.
type subscription struct {
	client  *Client
	channel string
	opts    auth.Namespace
	// info, when not nil, is who the client is in this channel's presence
	// in place of the client's own info (SubscribeAuthorizedAs).
	info *protocol.ClientInfo

	mu     sync.Mutex
	state  subState
	pos    protocol.StreamPosition // last position delivered to the client
	buf    []bufferedPub           // publications that arrived while recovering
	failed bool                    // the buffer overflowed while recovering
	// delta: the client asked for deltas where the namespace allows them
	// (set before the subscription is added, see WantsDelta);
	// deltaReady: the client holds the data of the publication at pos,
	// delivered live, from which the next may be a delta.
	delta, deltaReady bool
}

type subState uint8

const (
	subRecovering subState = iota
	subLive
	subClosed
)

type bufferedPub struct {
	pub *protocol.Publication
	pos protocol.StreamPosition
	msg []byte
}

// Deliver implements hub.Subscriber. A publication that arrives while
// recovering is held back, and counted when it goes out (see goLive).
func (s *subscription) Deliver(ev *hub.Event, b *outbox.Batch) bool {
	msg := s.client.eventBytes(ev)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case subClosed:
		return false
	case subRecovering:
		// Joins and leaves before the reply are dropped: the client asks
		// presence after subscribing.
		if ev.Kind != hub.KindPublication {
			return false
		}
		if len(s.buf) >= s.client.node.cfg.QueueMaxMessages {
			s.failed = true
			return false
		}
		s.buf = append(s.buf, bufferedPub{pub: ev.Pub, pos: ev.Pos, msg: msg})
		return false
	}
	if ev.Kind != hub.KindPublication {
		if msg == nil {
			return false
		}
		s.client.deliver(msg, b)
		return true
	}
	return s.deliverLocked(ev.Pub, ev.Pos, msg, s.deltaMsg(ev), b)
}

// deliverLocked sends a publication to a live subscription, dropping
// duplicates and disconnecting the client on a gap or an epoch change so
// that it reconnects and recovers (or learns that it cannot). b is the
// broadcast's batch; nil pushes to the outbox, which wakes its writer
// (or, in the read loop, waits for Client.Flush). delta, when not nil, is
// the publication as a delta from the one before it, sent instead of msg
// when the client holds that one (see deltaReady). It reports whether it
// queued the publication.
func (s *subscription) deliverLocked(pub *protocol.Publication, pos protocol.StreamPosition, msg, delta []byte, b *outbox.Batch) bool {
	if pos.Epoch == s.pos.Epoch && pub.Offset <= s.pos.Offset {
		return false // already delivered (history and live overlap)
	}
	if pos.Epoch != s.pos.Epoch || pub.Offset != s.pos.Offset+1 {
		s.state = subClosed
		s.client.node.log.Warn("gap in live stream", "channel", s.channel, "client", s.client.ID(),
			"have", s.pos.Offset, "got", pub.Offset, "epoch", s.pos.Epoch, "got_epoch", pos.Epoch)
		s.client.Disconnect(protocol.DisconnectInsufficientState)
		return false
	}
	s.pos.Offset = pub.Offset
	if delta != nil && s.deltaReady {
		msg = delta
	}
	s.deltaReady = false
	if msg == nil || s.skipOwn(pub) {
		return false
	}
	s.deltaReady = s.delta
	if b == nil {
		s.client.send(msg)
		return true
	}
	s.client.deliver(msg, b)
	return true
}

// skipOwn reports whether pub is the client's own publication that plain
// mode (unless asked to) and other protocols (Pusher's) do not echo.
func (s *subscription) skipOwn(pub *protocol.Publication) bool {
	return s.client.format != hub.FormatProtocol && !s.client.echo && pub.Publisher == s.client.ID()
}

// Subscribe subscribes the client to a channel. reply is called with the
// result while the subscription still holds back live publications, so
// whatever reply queues goes out before them. On error reply is not called.
//
// The reply carries at most MaxHistoryLimit publications and about a
// quarter of the client's queue (QueueMaxBytes/4); the publications to
// send beyond that (more history asked for, or a recovery that goes back
// further) follow it as publication pushes, read from history a page at a
// time, each waiting for room in the client's queue, and then the live
// ones. The reply's offset is then that of the last publication it
// carries, so that the pushes continue it.
func (c *Client) Subscribe(p protocol.SubscribeParams, reply func(*protocol.SubscribeResult)) error {
	return c.subscribe(p, reply, subscribeHow{})
}

// SubscribeWhole is Subscribe for a transport that writes the publications
// of a reply as messages of their own, outside the client's queue (Server-
// Sent Events): reply carries every publication to send, however many,
// read from history a page at a time.
func (c *Client) SubscribeWhole(p protocol.SubscribeParams, reply func(*protocol.SubscribeResult)) error {
	return c.subscribe(p, reply, subscribeHow{whole: true})
}

// subscribeHow says how subscribe serves a transport: whole (see
// SubscribeWhole), authorized (the transport authorized the channel by its
// own protocol's rules: the namespace's subscribe policy does not apply),
// prepare (run once the subscription holds back live publications, before
// reply; see SubscribeAuthorized) and info (see SubscribeAuthorizedAs).
type subscribeHow struct {
	whole, authorized bool
	prepare           func(context.Context) error
	info              json.RawMessage // see SubscribeAuthorizedAs
}

func (c *Client) subscribe(p protocol.SubscribeParams, reply func(*protocol.SubscribeResult), how subscribeHow) error {
	opts, err := c.node.policy.Namespace(p.Channel)
	if err != nil {
		return err
	}
	// The cheap checks first: a subscribe that would fail anyway costs
	// no backend call.
	if p.History < 0 || p.History > MaxHistoryLimit {
		return protocol.ErrBadRequest.WithMessage("history must be between 0 and %d", MaxHistoryLimit)
	}
	if c.subscribed(p.Channel) {
		return protocol.ErrAlreadySubscribed
	}
	if !how.authorized {
		if url := c.node.subscribeProxy(opts, p.Channel); url != "" && p.Token == "" {
			err = c.subscribeProxied(url, p) // the backend decides (proxy.go)
		} else {
			err = c.node.policy.CanSubscribe(c.credentials(), p.Channel, p.Token)
			if err == nil {
				err = c.admitSubscription(p.Channel, p.Token)
			}
		}
		if err != nil {
			return err
		}
	}
	s := &subscription{client: c, channel: p.Channel, opts: opts}
	if how.info != nil {
		c.mu.Lock()
		own := *c.info
		c.mu.Unlock()
		own.Info = how.info
		s.info = &own
	}
	if s.delta, err = c.wantsDelta(p, opts); err != nil {
		return err
	}
	joinLeave := p.JoinLeave && opts.JoinLeave
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return protocol.ErrInternal.WithMessage("connection closed")
	case c.subs[p.Channel] != nil:
		c.mu.Unlock()
		return protocol.ErrAlreadySubscribed
	case len(c.subs) >= c.node.cfg.MaxChannels:
		c.mu.Unlock()
		return protocol.ErrLimitExceeded.WithMessage("at most %d channels per connection", c.node.cfg.MaxChannels)
	}
	c.subs[p.Channel] = s
	c.mu.Unlock()

	if err := c.node.addSubscriber(c.ctx, p.Channel, s, joinLeave); err != nil {
		c.forget(s)
		return err
	}
	bl, err := c.readHistory(p, opts, how.whole)
	if err == nil && how.prepare != nil {
		err = how.prepare(c.ctx)
	}
	if err != nil {
		c.forget(s)
		c.node.removeSubscriber(p.Channel, s)
		c.node.settleOccupancy(p.Channel, s)
		return err
	}
	bl.res.JoinLeave, bl.res.Delta = joinLeave, s.delta
	if how.whole {
		bl.res.Publications, bl.rest = values(bl.rest), nil
	} else {
		bl.split(c.node.cfg.QueueMaxBytes / 4)
	}
	if !s.goLive(bl, reply) {
		return nil // the client is being disconnected
	}
	c.join(s)
	return nil
}

// CheckSubscribe reports whether the client may subscribe to ch without a
// subscription token (errors 105, 106, 107), so that a transport that
// subscribes on the client's behalf, such as Server-Sent Events, can refuse
// a request before it subscribes to any of its channels.
func (c *Client) CheckSubscribe(ch string) error {
	ns, err := c.node.policy.Namespace(ch)
	if err == nil && c.node.subscribeProxy(ns, ch) != "" {
		return nil // the backend decides when it subscribes
	}
	return c.node.policy.CanSubscribe(c.credentials(), ch, "")
}

// backlog is what a subscription sends before it goes live: its reply,
// then the publications in rest, then, when recovering (pages), those that
// follow them in history up to end, the channel's position when history
// was read, from which live publications go on.
type backlog struct {
	res   *protocol.SubscribeResult
	rest  []*protocol.Publication
	end   uint64
	pages bool
}

// readHistory reads what the subscription sends before it goes live: the
// channel's position and the recovered or latest publications. A recovery
// reads its first page (at most MaxHistoryLimit publications) and leaves
// the rest to goLive, or, whole, reads every page now.
func (c *Client) readHistory(p protocol.SubscribeParams, opts auth.Namespace, whole bool) (*backlog, error) {
	b := c.node.broker
	res := &protocol.SubscribeResult{Recoverable: opts.HistorySize > 0}
	if p.Since != nil && opts.HistorySize > 0 {
		h, err := c.node.historyBatch.read(c.ctx, b, p.Channel, broker.HistoryOptions{Since: p.Since, Limit: MaxHistoryLimit})
		if err != nil {
			c.node.metrics.BrokerErrors.WithLabelValues("history").Inc()
			return nil, err
		}
		pubs, ok := h.Publications, continues(*p.Since, h)
		for ok && whole && reached(*p.Since, pubs) < h.Position.Offset {
			next := protocol.StreamPosition{Offset: reached(*p.Since, pubs), Epoch: h.Position.Epoch}
			page, err := c.node.historyBatch.read(c.ctx, b, p.Channel, broker.HistoryOptions{Since: &next, Limit: MaxHistoryLimit})
			if err != nil {
				c.node.metrics.BrokerErrors.WithLabelValues("history").Inc()
				return nil, err
			}
			ok = continues(next, page) && len(page.Publications) > 0
			pubs = append(pubs[:len(pubs):len(pubs)], page.Publications...)
		}
		if ok {
			c.node.metrics.Recoveries.WithLabelValues("recovered").Inc()
			res.Recovered = true
			res.Offset, res.Epoch = h.Position.Offset, h.Position.Epoch
			return &backlog{res: res, rest: pubs, end: h.Position.Offset, pages: true}, nil
		}
	}
	if p.Since != nil {
		c.node.metrics.Recoveries.WithLabelValues("failed").Inc()
	}
	limit := historyLimit(p, opts)
	h, err := c.node.historyBatch.read(c.ctx, b, p.Channel, broker.HistoryOptions{Limit: limit})
	if err != nil {
		c.node.metrics.BrokerErrors.WithLabelValues("history").Inc()
		return nil, err
	}
	res.Offset, res.Epoch = h.Position.Offset, h.Position.Epoch
	return &backlog{res: res, rest: h.Publications, end: h.Position.Offset}, nil
}

// reached returns the offset up to which pubs, read after since,
// continue it.
func reached(since protocol.StreamPosition, pubs []*protocol.Publication) uint64 {
	if len(pubs) == 0 {
		return since.Offset
	}
	return pubs[len(pubs)-1].Offset
}

// split moves into the reply the first publications of the backlog that
// fit in budget bytes (at most MaxHistoryLimit of them). When any are left
// (or pages to read), the reply's offset becomes the one before them, so
// that the pushes that follow continue the reply.
func (bl *backlog) split(budget int) {
	k, size := 0, 0
	for k < len(bl.rest) && k < MaxHistoryLimit {
		size += pubSize(bl.rest[k])
		if size > budget {
			break
		}
		k++
	}
	bl.res.Publications = values(bl.rest[:k])
	bl.rest = bl.rest[k:]
	switch {
	case len(bl.rest) > 0:
		bl.res.Offset = bl.rest[0].Offset - 1
	case bl.pages && k > 0 && bl.res.Offset > bl.res.Publications[k-1].Offset:
		bl.res.Offset = bl.res.Publications[k-1].Offset // pages to read follow
	}
}

// pubSize is about how many bytes pub takes in a reply (a little more).
func pubSize(pub *protocol.Publication) int {
	n := len(pub.Data) + 64
	if f := pub.From; f != nil {
		n += len(f.Client) + len(f.User) + len(f.Info) + 48
	}
	return n
}

// goLive queues the reply, then the rest of the backlog (waiting for room
// in the client's queue), then the buffered publications newer than it,
// and switches to live delivery. It reports false when the client is
// being disconnected: the buffer overflowed while recovering (a slow
// consumer), or history lost what the reply promised (3004: the client
// recovers again from what it has).
func (s *subscription) goLive(bl *backlog, reply func(*protocol.SubscribeResult)) bool {
	res := bl.res
	pos := protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
	s.mu.Lock()
	if !s.usableLocked() {
		s.mu.Unlock()
		return false
	}
	if reply != nil {
		reply(res)
	}
	s.mu.Unlock()
	// Still recovering: live publications wait in the buffer meanwhile.
	pos, ok := s.catchUp(bl, pos)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || !s.usableLocked() {
		s.state = subClosed
		return false
	}
	s.state = subLive
	s.pos = pos
	sent, size := 0, 0
	for _, b := range s.buf {
		if s.deliverLocked(b.pub, b.pos, b.msg, nil, nil) {
			sent++
			size += len(b.msg)
		}
	}
	s.buf = nil
	s.client.node.countPushes(sent, size)
	return true
}

// usableLocked reports whether the subscription may still go live,
// disconnecting the client when its buffer overflowed; s.mu is held.
func (s *subscription) usableLocked() bool {
	if s.state == subClosed {
		return false
	}
	if s.failed {
		s.state = subClosed
		s.client.Disconnect(protocol.DisconnectSlowConsumer)
		return false
	}
	return true
}

// catchUp pushes the rest of the backlog, which continues pos, then, when
// recovering, reads and pushes the publications that follow it in history
// up to the backlog's end, a page at a time. Before each push it waits
// while the client's queue is crowded, as the client's own commands do.
// It returns the position live publications continue, and false when the
// client is being disconnected.
func (s *subscription) catchUp(bl *backlog, pos protocol.StreamPosition) (protocol.StreamPosition, bool) {
	c := s.client
	pubs := bl.rest
	for {
		for _, pub := range pubs {
			if c.out.Closing() || c.out.Crowded() && !c.out.WaitRoom(c.ctx.Done()) {
				return pos, false
			}
			push := protocol.Push{Type: protocol.PushPublication, Channel: s.channel, Pub: pub}
			if err := c.sendEncoded(func(b []byte) ([]byte, error) { return protocol.AppendPush(b, &push) }); err != nil {
				return pos, false
			}
			pos.Offset = pub.Offset
		}
		if !bl.pages || pos.Offset >= bl.end {
			pos.Offset = max(pos.Offset, bl.end)
			return pos, true
		}
		h, err := c.node.historyBatch.read(c.ctx, c.node.broker, s.channel, broker.HistoryOptions{Since: &pos, Limit: MaxHistoryLimit})
		if err != nil || !continues(pos, h) || len(h.Publications) == 0 {
			// What history held a moment ago is gone (trimmed, expired,
			// or lost with a failover), or cannot be read: the client
			// recovers again from what it has, and learns which.
			c.node.log.Warn("recovery cut short", "channel", s.channel, "client", c.ID(), "at", pos.Offset, "end", bl.end, "err", err)
			c.Disconnect(protocol.DisconnectInsufficientState)
			return pos, false
		}
		pubs = h.Publications
	}
}

// presenceInfo returns who the client is in the channel's presence: the
// subscription's own info, or the client's.
func (s *subscription) presenceInfo() *protocol.ClientInfo {
	if s.info != nil {
		return s.info
	}
	return s.client.info
}

// join records the client in the channel's presence and announces it, as
// far as the namespace keeps presence and join/leave. With presence, the
// join is announced by whoever added the client (see refreshSub).
func (c *Client) join(s *subscription) {
	ch, opts, info := s.channel, s.opts, s.presenceInfo()
	change := broker.PresenceChange{Client: info}
	if opts.Presence {
		var err error
		if change, err = c.node.presence.AddPresence(c.ctx, ch, info); err != nil {
			c.node.log.Warn("add presence failed", "channel", ch, "client", c.ID(), "err", err)
		}
	}
	if change.Client != nil {
		c.node.presenceChanged(c.ctx, ch, opts, protocol.PushJoin, change)
	}
}

// forget removes s from the client's subscriptions if it is still there.
func (c *Client) forget(s *subscription) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[s.channel] != s {
		return false
	}
	delete(c.subs, s.channel)
	return true
}

// Unsubscribe unsubscribes the client from a channel; unsubscribing from a
// channel the client is not subscribed to does nothing. No publication of
// the channel is queued after it returns.
func (c *Client) Unsubscribe(ch string) {
	c.mu.Lock()
	s := c.subs[ch]
	c.mu.Unlock()
	if s != nil && c.forget(s) {
		c.unsubscribeFrom(s)
	}
}

func (c *Client) unsubscribeFrom(s *subscription) {
	c.node.removeSubscriber(s.channel, s)
	s.mu.Lock()
	s.state = subClosed
	s.buf = nil
	s.mu.Unlock()
	// The client's own context may be cancelled already (it disconnected);
	// leaving must still happen.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), cleanupTimeout)
	defer cancel()
	// With presence, the leave is announced by whoever removed the client:
	// not here when it had expired and another node announced it.
	change := broker.PresenceChange{Client: c.info}
	if s.opts.Presence {
		removed, err := c.node.presence.RemovePresence(ctx, s.channel, c.ID())
		if err != nil {
			c.node.log.Warn("remove presence failed", "channel", s.channel, "client", c.ID(), "err", err)
		} else {
			change = removed
		}
	}
	if change.Client != nil {
		c.node.presenceChanged(ctx, s.channel, s.opts, protocol.PushLeave, change)
	}
	c.node.settleOccupancy(s.channel, s)
}
