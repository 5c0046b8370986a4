package client

import (
	"time"

	"github.com/redcast/redcast/protocol"
)

// Handlers receive the events of one Session subscription. The handlers of
// all subscriptions of a session are called one at a time, in the order of
// the events, from the session's delivery goroutine; they may call any
// Session method except Close. (A Subscribe made from a handler completes
// only once its OnSubscribed event fits in the queue, which cannot happen
// while the queue is full and that handler runs: give it a deadline.) Nil
// handlers are skipped.
type Handlers struct {
	// OnSubscribed is called each time the subscription is in place: after
	// Subscribe, and again after each reconnect, before the publications
	// of that subscribe reply. When e.RecoveryFailed(), publications were
	// missed and the application should reload its state.
	OnSubscribed func(SubscribedEvent)
	// OnPublication is called for every publication of the channel,
	// oldest first, each offset once.
	OnPublication func(PublicationEvent)
	// OnJoin and OnLeave are called when a connection subscribes to or
	// leaves the channel, in namespaces with join/leave on: setting either
	// asks the server for them (as SubscribeOptions.JoinLeave does). They
	// are not recovered: after OnSubscribed, ask Presence.
	OnJoin  func(PresenceEvent)
	OnLeave func(PresenceEvent)
	// OnUnsubscribed is called when the server unsubscribed the client, or
	// refused to subscribe again after a reconnect (for example because the
	// channel's namespace was removed, or its subscription token expired:
	// subscribe again with a fresh one); the subscription is over. It is
	// not called after Unsubscribe.
	OnUnsubscribed func(UnsubscribedEvent)
}

// SubscribedEvent says that a subscription is in place.
type SubscribedEvent struct {
	Channel string
	// Position is the channel's position when the subscription started:
	// the publications that come with the event end at it, and live ones
	// continue after it.
	Position protocol.StreamPosition
	// Recoverable says whether the channel keeps history, so that
	// recovery can work.
	Recoverable bool
	// Recovering says whether the subscription asked to recover: it
	// resumes after a reconnect, or SubscribeOptions.Since was set.
	Recovering bool
	// Recovered says, when Recovering, whether the publications that come
	// with the event are every one missed (possibly none).
	Recovered bool
}

// RecoveryFailed reports whether publications were missed: recovery was
// asked for and history could not cover the gap (it was trimmed or
// expired, or the stream's epoch changed). The publications that come with
// the event are then the channel's latest SubscribeOptions.History ones.
func (e SubscribedEvent) RecoveryFailed() bool { return e.Recovering && !e.Recovered }

// PublicationEvent is one publication of a subscribed channel.
type PublicationEvent struct {
	Channel string
	// Epoch is the epoch of the channel's stream the publication belongs
	// to.
	Epoch string
	protocol.Publication
}

// Position returns the publication's position, from which a later
// subscription can recover with SubscribeOptions.Since.
func (e PublicationEvent) Position() protocol.StreamPosition {
	return protocol.StreamPosition{Offset: e.Offset, Epoch: e.Epoch}
}

// PresenceEvent is a connection joining or leaving a channel.
type PresenceEvent struct {
	Channel string
	Client  protocol.ClientInfo
}

// UnsubscribedEvent says that the server ended a subscription: Err is the
// *protocol.Error it answered to the subscribe, or wraps ErrUnsubscribed
// when it sent an unsubscribe push.
type UnsubscribedEvent struct {
	Channel string
	Err     error
}

// ConnectEvent says that a Session's connection is up.
type ConnectEvent struct {
	// ClientID is the id the server gave the connection.
	ClientID string
}

// DisconnectEvent says that a Session's connection ended, or that an
// attempt to reconnect failed.
type DisconnectEvent struct {
	// Err is why: it wraps a protocol.Disconnect when the server closed
	// the connection, ErrConnectionLost when the network failed,
	// ErrQueueFull when the handlers were too slow.
	Err error
	// Reconnect says whether the session tries again, after Delay. When
	// false the session is over: Done is closed once the events queued
	// have been handled.
	Reconnect bool
	Delay     time.Duration
}

type eventKind uint8

const (
	evSubscribed eventKind = iota
	evPublication
	evJoin
	evLeave
	evUnsubscribed
	evEnd // the session ended: the delivery goroutine exits
)

// event is one entry of the session's delivery queue.
type event struct {
	kind  eventKind
	sub   *Subscription
	epoch string                    // evPublication
	pub   *protocol.Publication     // evPublication
	res   *protocol.SubscribeResult // evSubscribed, with the publications to deliver
	// recovering is whether the subscribe asked to recover (evSubscribed).
	recovering bool
	client     *protocol.ClientInfo // evJoin, evLeave
	err        error                // evUnsubscribed
}

// deliverLoop is the delivery goroutine: it calls the handlers, one event
// at a time, until the session is closed or has ended.
func (s *Session) deliverLoop() {
	defer s.exited()
	for {
		select {
		case ev := <-s.events:
			if ev.kind == evEnd || s.ctx.Err() != nil {
				return
			}
			s.deliver(ev)
		case <-s.ctx.Done():
			return
		}
	}
}

// deliver calls the handler of ev, unless the application unsubscribed.
func (s *Session) deliver(ev event) {
	sub := ev.sub
	if !s.wanted(sub) {
		return
	}
	h := &sub.h
	switch ev.kind {
	case evSubscribed:
		res := ev.res
		pos := protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
		if h.OnSubscribed != nil {
			h.OnSubscribed(SubscribedEvent{
				Channel:     sub.channel,
				Position:    pos,
				Recoverable: res.Recoverable,
				Recovering:  ev.recovering,
				Recovered:   res.Recovered,
			})
		}
		for i := range res.Publications {
			if !s.publication(sub, res.Epoch, &res.Publications[i]) {
				return
			}
		}
		s.handled(sub, pos)
	case evPublication:
		s.publication(sub, ev.epoch, ev.pub)
	case evJoin:
		if h.OnJoin != nil {
			h.OnJoin(PresenceEvent{Channel: sub.channel, Client: *ev.client})
		}
	case evLeave:
		if h.OnLeave != nil {
			h.OnLeave(PresenceEvent{Channel: sub.channel, Client: *ev.client})
		}
	case evUnsubscribed:
		if h.OnUnsubscribed != nil {
			h.OnUnsubscribed(UnsubscribedEvent{Channel: sub.channel, Err: ev.err})
		}
	}
}

// publication delivers one publication and records its position. It
// reports false when the application has unsubscribed meanwhile.
func (s *Session) publication(sub *Subscription, epoch string, p *protocol.Publication) bool {
	if !s.wanted(sub) {
		return false
	}
	if sub.h.OnPublication != nil {
		sub.h.OnPublication(PublicationEvent{Channel: sub.channel, Epoch: epoch, Publication: *p})
	}
	s.handled(sub, protocol.StreamPosition{Offset: p.Offset, Epoch: epoch})
	return true
}

// wanted reports whether sub's handlers may still be called.
func (s *Session) wanted(sub *Subscription) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !sub.unsubscribed && s.ctx.Err() == nil
}

// handled records the position of what the handlers have been given. It
// does not go back within an epoch: the history that comes with a first
// subscription is older than where it started.
func (s *Session) handled(sub *Subscription, pos protocol.StreamPosition) {
	s.mu.Lock()
	if pos.Epoch != sub.handled.Epoch || pos.Offset > sub.handled.Offset {
		sub.handled = pos
	}
	s.mu.Unlock()
}
