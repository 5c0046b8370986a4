package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redcast/redcast/protocol"
)

// Subscription is a channel subscription of a Session. The session keeps
// it across reconnects, recovering from the last publication it queued for
// the handlers, until Unsubscribe.
type Subscription struct {
	s         *Session
	channel   string
	history   int
	token     string
	joinLeave bool
	delta     bool
	h         Handlers

	// Guarded by s.mu.
	//
	// pos is the position of the last publication queued for the
	// handlers (or of the last subscribe reply); recover says it is set,
	// so the next subscribe asks to recover from it.
	pos     protocol.StreamPosition
	recover bool
	// conn is the connection the subscribe was sent on, nil until it is
	// sent on the current one; live says its reply was handled, so its
	// pushes are queued.
	conn *Client
	live bool
	// removed says the subscription left s.subs; unsubscribed that the
	// application asked for it, so its handlers are no longer called.
	removed      bool
	unsubscribed bool
	// first receives the outcome of the first subscribe for the waiting
	// Subscribe call; nil once sent.
	first chan error
	// handled is the position of the last publication given to the
	// handlers.
	handled protocol.StreamPosition
	// prevData is the data of the last live publication (at pos), whole,
	// to which the next one's delta applies; nil before the first.
	prevData []byte
}

// Subscribe subscribes the session to channel and returns once the server
// accepted the subscription (waiting for a connection while the session
// reconnects, bounded by ctx). opts.History asks for the latest
// publications now and whenever recovery fails; opts.Since starts by
// recovering from a position kept earlier. h receives the subscription's
// events; the first is OnSubscribed. The subscription asks for join and
// leave pushes when opts.JoinLeave is set or h has OnJoin or OnLeave.
//
// Errors: those the server answers (protocol.ErrInvalidChannel,
// ErrUnknownNamespace, ErrLimitExceeded …), protocol.ErrAlreadySubscribed
// when the session already has a subscription to channel, ctx.Err(), and
// the session's Err once it is over.
func (s *Session) Subscribe(ctx context.Context, channel string, opts SubscribeOptions, h Handlers) (*Subscription, error) {
	first := make(chan error, 1)
	sub := &Subscription{s: s, channel: channel, history: opts.History, token: opts.Token, joinLeave: opts.JoinLeave || h.OnJoin != nil || h.OnLeave != nil, delta: opts.Delta, h: h, first: first}
	if opts.Since != nil {
		sub.pos, sub.recover, sub.handled = *opts.Since, true, *opts.Since
	}
	s.mu.Lock()
	switch {
	case s.err != nil:
		err := s.err
		s.mu.Unlock()
		return nil, err
	case s.subs[channel] != nil:
		s.mu.Unlock()
		return nil, protocol.ErrAlreadySubscribed.WithMessage("the session is already subscribed to %s", channel)
	}
	s.subs[channel] = sub
	if s.cur != nil {
		s.subscribeLocked(s.cur, sub)
	}
	s.mu.Unlock()

	var err error
	select {
	case err = <-first:
		if err == nil {
			return sub, nil
		}
		return nil, err
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.over:
		err = s.Err()
	}
	s.mu.Lock()
	s.unsubscribeLocked(sub, nil)
	s.mu.Unlock()
	return nil, err
}

// Channel returns the subscription's channel.
func (sub *Subscription) Channel() string { return sub.channel }

// Position returns the position of the last publication given to the
// handlers, or where the subscription started (SubscribeOptions.Since, or
// the channel's position when Subscribe returned) if none was. A later
// subscription, in another process for instance, resumes from it with
// SubscribeOptions.Since.
func (sub *Subscription) Position() protocol.StreamPosition {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	return sub.handled
}

// Unsubscribe ends the subscription. No handler call for it starts after
// Unsubscribe returns, apart from one being started as it is called. It
// waits for the server's reply, bounded by ctx, when the connection is up;
// a connection lost meanwhile is not an error.
func (sub *Subscription) Unsubscribe(ctx context.Context) error {
	s := sub.s
	done := make(chan reply, 1)
	s.mu.Lock()
	sent := s.unsubscribeLocked(sub, func(r reply) { done <- r })
	s.mu.Unlock()
	if !sent {
		return nil
	}
	select {
	case r := <-done:
		var perr *protocol.Error
		if errors.As(r.err, &perr) {
			return r.err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unsubscribeLocked removes sub at the application's request and, when its
// subscribe was sent on the current connection, queues unsubscribe there
// (under s.mu, so that a later subscribe to the channel goes after it);
// fn, if not nil, receives the reply. It reports whether it sent.
func (s *Session) unsubscribeLocked(sub *Subscription, fn func(reply)) bool {
	sub.unsubscribed = true
	if sub.removed {
		return false
	}
	c := sub.conn
	s.removeLocked(sub)
	if c == nil {
		return false
	}
	if fn == nil {
		fn = func(reply) {}
	}
	_, err := c.send(protocol.MethodUnsubscribe, protocol.ChannelParams{Channel: sub.channel}, fn)
	return err == nil
}

func (s *Session) removeLocked(sub *Subscription) {
	sub.removed = true
	sub.conn, sub.live = nil, false
	if s.subs[sub.channel] == sub {
		delete(s.subs, sub.channel)
	}
}

// subscribeLocked sends subscribe for sub on c, with since when sub has a
// position. Its reply is handled on c's reader goroutine, before the
// pushes that follow it.
func (s *Session) subscribeLocked(c *Client, sub *Subscription) {
	sub.conn, sub.live = c, false
	params := protocol.SubscribeParams{Channel: sub.channel, History: sub.history, Token: sub.token, JoinLeave: sub.joinLeave, Delta: deltaParam(sub.delta)}
	recovering := sub.recover
	if recovering {
		since := sub.pos
		params.Since = &since
	}
	_, err := c.send(protocol.MethodSubscribe, params, func(r reply) { s.subscribed(c, sub, recovering, r) })
	if err != nil && !c.ended() && sub.first != nil {
		// Not sent, and never will be (the command does not fit in a
		// frame): the caller learns why.
		s.removeLocked(sub)
		sub.first <- err
		sub.first = nil
	}
}

// subscribed handles the reply to a subscribe sent on c.
func (s *Session) subscribed(c *Client, sub *Subscription, recovering bool, r reply) {
	var fail error
	s.mu.Lock()
	if sub.conn == c && !sub.removed {
		if r.err != nil {
			fail = s.refusedLocked(sub, r.err)
		} else {
			fail = s.goLiveLocked(sub, recovering, r.result)
		}
	}
	s.mu.Unlock()
	if fail != nil {
		c.fail(fail, closeNormal)
	}
}

// refusedLocked handles a subscribe that failed with err. It returns an
// error when the connection must end so that the session reconnects.
func (s *Session) refusedLocked(sub *Subscription, err error) error {
	var perr *protocol.Error
	if !errors.As(err, &perr) {
		return nil // the connection ended: the next one subscribes again
	}
	switch {
	case sub.first != nil: // the caller of Subscribe decides
		s.removeLocked(sub)
		sub.first <- err
		sub.first = nil
	case temporary(perr):
		return fmt.Errorf("client: subscribe to %s again: %w", sub.channel, err)
	case s.enqueueLocked(event{kind: evUnsubscribed, sub: sub, err: err}):
		s.removeLocked(sub)
	default:
		return ErrQueueFull
	}
	return nil
}

// goLiveLocked queues the subscribe result and its publications not queued
// before, and lets the pushes that follow through.
func (s *Session) goLiveLocked(sub *Subscription, recovering bool, raw json.RawMessage) error {
	res := new(protocol.SubscribeResult)
	if err := json.Unmarshal(raw, res); err != nil {
		return fmt.Errorf("%w: subscribe result: %v", ErrProtocol, err)
	}
	if recovering && res.Epoch == sub.pos.Epoch {
		pubs := res.Publications
		for len(pubs) > 0 && pubs[0].Offset <= sub.pos.Offset {
			pubs = pubs[1:]
		}
		res.Publications = pubs
	}
	if !s.enqueueLocked(event{kind: evSubscribed, sub: sub, res: res, recovering: recovering}) {
		return ErrQueueFull
	}
	sub.pos = protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
	sub.prevData = nil // the server sends the first live publication whole
	if !recovering {
		// Nothing came before: a later subscription may start here even
		// if the handlers have not seen this one yet.
		sub.handled = sub.pos
	}
	sub.recover, sub.live = true, true
	if sub.first != nil {
		sub.first <- nil
		sub.first = nil
	}
	return nil
}

// route handles a push of connection c, on c's reader goroutine: it queues
// the publications, joins and leaves of live subscriptions, dropping
// duplicates and ending the connection on a gap or a full queue.
func (s *Session) route(c *Client, p *protocol.Push) {
	switch {
	case c.ended():
		return
	case p.Type == protocol.PushRefresh:
		select {
		case s.refreshDue <- c:
		default: // one is due already
		}
		return
	case p.Type == protocol.PushDisconnect:
		return
	case p.Type == protocol.PushUnsubscribe:
		s.unsubscribedByServer(c, p)
		return
	}
	var fail error
	s.mu.Lock()
	if sub := s.subs[p.Channel]; sub != nil && sub.conn == c && sub.live {
		fail = s.pushLocked(sub, p)
	}
	s.mu.Unlock()
	if fail != nil {
		c.fail(fail, closeNormal)
	}
}

// unsubscribedByServer ends the subscription an unsubscribe push of c names.
func (s *Session) unsubscribedByServer(c *Client, p *protocol.Push) {
	s.mu.Lock()
	sub := s.subs[p.Channel]
	ok := sub == nil || sub.conn != c
	if !ok {
		err := fmt.Errorf("%w: %s", ErrUnsubscribed, p.Reason)
		if ok = s.enqueueLocked(event{kind: evUnsubscribed, sub: sub, err: err}); ok {
			s.removeLocked(sub)
		}
	}
	s.mu.Unlock()
	if !ok {
		c.fail(ErrQueueFull, closeNormal)
	}
}

func (s *Session) pushLocked(sub *Subscription, p *protocol.Push) error {
	switch p.Type {
	case protocol.PushPublication:
		if p.Pub == nil {
			return nil
		}
		switch off := p.Pub.Offset; {
		case off <= sub.pos.Offset:
			return nil // queued already
		case off != sub.pos.Offset+1:
			return fmt.Errorf("%w: %s: offset %d after %d", errGap, sub.channel, off, sub.pos.Offset)
		}
		pub, err := sub.whole(p.Pub)
		if err != nil {
			return err
		}
		if !s.enqueueLocked(event{kind: evPublication, sub: sub, epoch: sub.pos.Epoch, pub: pub}) {
			return ErrQueueFull
		}
		sub.pos.Offset, sub.prevData = pub.Offset, pub.Data
	case protocol.PushJoin, protocol.PushLeave:
		if p.Client == nil {
			return nil
		}
		kind := evJoin
		if p.Type == protocol.PushLeave {
			kind = evLeave
		}
		if !s.enqueueLocked(event{kind: kind, sub: sub, client: p.Client}) {
			return ErrQueueFull
		}
	}
	return nil
}

// enqueueLocked queues ev for the delivery goroutine unless the queue is
// full. Holding s.mu keeps the events of all connections in order.
func (s *Session) enqueueLocked(ev event) bool {
	select {
	case s.events <- ev:
		return true
	default:
		return false
	}
}
