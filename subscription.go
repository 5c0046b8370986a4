package redcast

import (
	"context"
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

	mu     sync.Mutex
	state  subState
	pos    protocol.StreamPosition // last position delivered to the client
	buf    []bufferedPub           // publications that arrived while recovering
	failed bool                    // the buffer overflowed while recovering
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

// Deliver implements hub.Subscriber.
func (s *subscription) Deliver(ev *hub.Event, b *outbox.Batch) {
	msg := ev.Bytes(s.client.format)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case subClosed:
		return
	case subRecovering:
		// Joins and leaves before the reply are dropped: the client asks
		// presence after subscribing.
		if ev.Kind != hub.KindPublication {
			return
		}
		if len(s.buf) >= s.client.node.cfg.QueueMaxMessages {
			s.failed = true
			return
		}
		s.buf = append(s.buf, bufferedPub{pub: ev.Pub, pos: ev.Pos, msg: msg})
		return
	}
	if ev.Kind != hub.KindPublication {
		if msg != nil {
			s.client.deliver(msg, b)
		}
		return
	}
	s.deliverLocked(ev.Pub, ev.Pos, msg, b)
}

// deliverLocked sends a publication to a live subscription, dropping
// duplicates and disconnecting the client on a gap or an epoch change so
// that it reconnects and recovers (or learns that it cannot). b is the
// broadcast's batch; nil queues directly (the read loop writes it).
func (s *subscription) deliverLocked(pub *protocol.Publication, pos protocol.StreamPosition, msg []byte, b *outbox.Batch) {
	if pos.Epoch == s.pos.Epoch && pub.Offset <= s.pos.Offset {
		return // already delivered (history and live overlap)
	}
	if pos.Epoch != s.pos.Epoch || pub.Offset != s.pos.Offset+1 {
		s.state = subClosed
		s.client.node.log.Warn("gap in live stream", "channel", s.channel, "client", s.client.ID(),
			"have", s.pos.Offset, "got", pub.Offset, "epoch", s.pos.Epoch, "got_epoch", pos.Epoch)
		s.client.Disconnect(protocol.DisconnectInsufficientState)
		return
	}
	s.pos.Offset = pub.Offset
	if msg == nil || s.skipOwn(pub) {
		return
	}
	if b == nil {
		s.client.send(msg)
		return
	}
	s.client.deliver(msg, b)
}

// skipOwn reports whether pub is the client's own publication that plain
// mode does not echo.
func (s *subscription) skipOwn(pub *protocol.Publication) bool {
	return s.client.format == hub.FormatPlain && !s.client.echo && pub.Publisher == s.client.ID()
}

// Subscribe subscribes the client to a channel. reply is called with the
// result while the subscription still holds back live publications, so
// whatever reply queues goes out before them. On error reply is not called.
func (c *Client) Subscribe(p protocol.SubscribeParams, reply func(*protocol.SubscribeResult)) error {
	if err := c.node.policy.CanSubscribe(c.credentials(), p.Channel, p.Token); err != nil {
		return err
	}
	opts, err := c.node.policy.Namespace(p.Channel)
	if err != nil {
		return err
	}
	if p.History < 0 || p.History > MaxHistoryLimit {
		return protocol.ErrBadRequest.WithMessage("history must be between 0 and %d", MaxHistoryLimit)
	}
	s := &subscription{client: c, channel: p.Channel, opts: opts}
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
	res, err := c.readHistory(p, opts)
	if err != nil {
		c.forget(s)
		c.node.removeSubscriber(p.Channel, s)
		return err
	}
	res.JoinLeave = joinLeave
	if !s.goLive(res, reply) {
		return nil // the buffer overflowed: the client is being disconnected
	}
	c.join(p.Channel, opts)
	return nil
}

// CheckSubscribe reports whether the client may subscribe to ch without a
// subscription token (errors 105, 106, 107), so that a transport that
// subscribes on the client's behalf, such as Server-Sent Events, can refuse
// a request before it subscribes to any of its channels.
func (c *Client) CheckSubscribe(ch string) error {
	return c.node.policy.CanSubscribe(c.credentials(), ch, "")
}

// readHistory reads what the subscribe reply carries: the channel's position
// and the recovered or latest publications.
func (c *Client) readHistory(p protocol.SubscribeParams, opts auth.Namespace) (*protocol.SubscribeResult, error) {
	b := c.node.broker
	res := &protocol.SubscribeResult{Recoverable: opts.HistorySize > 0}
	if p.Since != nil && opts.HistorySize > 0 {
		h, err := c.node.historyBatch.read(c.ctx, b, p.Channel, broker.HistoryOptions{Since: p.Since, Limit: MaxHistoryLimit})
		if err != nil {
			c.node.metrics.BrokerErrors.WithLabelValues("history").Inc()
			return nil, err
		}
		if continues(*p.Since, h) && uint64(len(h.Publications)) == h.Position.Offset-p.Since.Offset {
			c.node.metrics.Recoveries.WithLabelValues("recovered").Inc()
			res.Recovered = true
			res.Offset, res.Epoch = h.Position.Offset, h.Position.Epoch
			res.Publications = values(h.Publications)
			return res, nil
		}
	}
	if p.Since != nil {
		c.node.metrics.Recoveries.WithLabelValues("failed").Inc()
	}
	limit := p.History
	if opts.HistorySize == 0 {
		limit = 0
	}
	h, err := c.node.historyBatch.read(c.ctx, b, p.Channel, broker.HistoryOptions{Limit: limit})
	if err != nil {
		c.node.metrics.BrokerErrors.WithLabelValues("history").Inc()
		return nil, err
	}
	res.Offset, res.Epoch = h.Position.Offset, h.Position.Epoch
	res.Publications = values(h.Publications)
	return res, nil
}

// goLive queues the reply, then the buffered publications newer than it,
// and switches to live delivery. It reports false when the buffer overflowed
// while recovering (the client is then disconnected as a slow consumer).
func (s *subscription) goLive(res *protocol.SubscribeResult, reply func(*protocol.SubscribeResult)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == subClosed {
		return false
	}
	if s.failed {
		s.state = subClosed
		s.client.Disconnect(protocol.DisconnectSlowConsumer)
		return false
	}
	if reply != nil {
		reply(res)
	}
	s.state = subLive
	s.pos = protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
	for _, b := range s.buf {
		s.deliverLocked(b.pub, b.pos, b.msg, nil)
	}
	s.buf = nil
	return true
}

// join records the client in the channel's presence and announces it, as
// far as the namespace keeps presence and join/leave. With presence, the
// join is announced by whoever added the client (see refreshSub).
func (c *Client) join(ch string, opts auth.Namespace) {
	change := broker.PresenceChange{Client: c.info}
	if opts.Presence {
		var err error
		if change, err = c.node.presence.AddPresence(c.ctx, ch, c.info); err != nil {
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
}
