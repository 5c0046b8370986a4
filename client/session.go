package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/protocol"
)

// dialTimeout bounds each reconnect attempt (dial and connect).
const dialTimeout = 10 * time.Second

// Session is a connection that comes back: when the connection ends and the
// server does not advise against it, the session reconnects with backoff
// and restores its subscriptions, recovering what they missed. Create it
// with Connect; its methods are safe for concurrent use.
type Session struct {
	url  string
	opts SessionOptions

	// ctx is cancelled by Close; it stops both goroutines and bounds
	// reconnect attempts.
	ctx    context.Context
	cancel context.CancelFunc
	// events is the bounded queue from the connections' reader goroutines
	// to the delivery goroutine.
	events chan event
	// refreshDue carries a connection whose token expired to the
	// connection goroutine.
	refreshDue chan *Client
	running    atomic.Int32
	done       chan struct{} // closed when both goroutines have exited

	mu   sync.Mutex
	cur  *Client       // the connection, nil while reconnecting
	up   chan struct{} // closed when cur is set, for calls waiting for it
	down chan struct{} // closed when cur is cleared, for calls waiting for a new one
	subs map[string]*Subscription
	err  error         // why the session ended; nil while it runs
	over chan struct{} // closed when err is set
}

// Connect opens a Session to the full-protocol endpoint at url. It returns
// once the first connection is up, or with the error that prevented it, so
// that a wrong URL or token shows at once; ctx bounds that first attempt
// only. Later connections are retried until Close or until the server
// advises against reconnecting.
func Connect(ctx context.Context, url string, opts SessionOptions) (*Session, error) {
	opts = opts.withDefaults()
	s := &Session{
		url:        url,
		opts:       opts,
		events:     make(chan event, opts.QueueSize),
		refreshDue: make(chan *Client, 1),
		done:       make(chan struct{}),
		up:         make(chan struct{}),
		subs:       make(map[string]*Subscription),
		over:       make(chan struct{}),
	}
	c, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.running.Store(2)
	go s.connLoop(c)
	go s.deliverLoop()
	return s, nil
}

// Close ends the session: it closes the connection, fails the calls under
// way with ErrClosed, drops the events not yet handled and waits for the
// session's goroutines to exit, so it must not be called from a handler or
// from OnConnect or OnDisconnect. It is idempotent and always returns nil.
func (s *Session) Close() error {
	s.end(ErrClosed)
	s.cancel()
	<-s.done
	return nil
}

// Done returns a channel that is closed when the session is over — after
// Close, or when the server advised against reconnecting and the events
// queued before have been handled — and its goroutines have exited.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session is over, or nil while it runs: ErrClosed
// after Close, otherwise the error that ended the last connection (see
// DisconnectEvent.Err).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Publish publishes data to channel on the current connection, waiting for
// one while the session reconnects (bounded by ctx). It is not retried: if
// the connection ends before the reply, the publication may or may not
// have been stored. See Client.Publish.
func (s *Session) Publish(ctx context.Context, channel string, data any) (protocol.StreamPosition, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	return c.Publish(ctx, channel, data)
}

// History is Client.History on the current connection, waiting for one
// while the session reconnects (bounded by ctx).
func (s *Session) History(ctx context.Context, channel string, opts HistoryOptions) (*protocol.HistoryResult, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.History(ctx, channel, opts)
}

// Presence is Client.Presence on the current connection, waiting for one
// while the session reconnects (bounded by ctx).
func (s *Session) Presence(ctx context.Context, channel string) ([]protocol.ClientInfo, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.Presence(ctx, channel)
}

// conn returns the current connection, waiting for one while the session
// reconnects.
func (s *Session) conn(ctx context.Context) (*Client, error) {
	return s.connOtherThan(ctx, nil)
}

// dial opens one connection whose pushes go to the session.
func (s *Session) dial(ctx context.Context) (*Client, error) {
	opts := s.opts.Conn
	if s.opts.Token != nil {
		tok, err := s.opts.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: connection token: %w", err)
		}
		opts.Token = tok
	}
	return dialConn(ctx, s.url, opts, s.route)
}

// refresh sends a fresh connection token on c, whose token expired. When
// that fails the server disconnects c (3006) and the session reconnects.
func (s *Session) refresh(c *Client) {
	if s.opts.Token == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	defer cancel()
	tok, err := s.opts.Token(ctx)
	if err == nil {
		_, _ = c.Refresh(ctx, tok)
	}
}

// connLoop is the connection goroutine: it owns the connection, waits for
// it to end and reconnects, until Close or a disconnect that advises
// against reconnecting.
func (s *Session) connLoop(c *Client) {
	defer s.exited()
	b := backoff{base: s.opts.BaseDelay, max: s.opts.MaxDelay}
	for {
		since := time.Now()
		if !s.serve(c) {
			return
		}
		if time.Since(since) >= b.max {
			b.reset()
		}
		if c = s.reconnect(&b, c.Err(), c.reconnectAdvice, c.advisedDelay()); c == nil {
			return
		}
	}
}

// serve makes c the session's connection until it ends. It reports false
// when the session was closed instead.
func (s *Session) serve(c *Client) bool {
	s.attach(c)
	defer s.detach()
	if f := s.opts.OnConnect; f != nil {
		f(ConnectEvent{ClientID: c.ID()})
	}
	for {
		select {
		case <-c.Done():
			return true
		case rc := <-s.refreshDue:
			if rc == c {
				s.refresh(c)
			}
		case <-s.ctx.Done():
			c.Close()
			return false
		}
	}
}

// reconnect waits and dials, with backoff, until a connection is up, after
// a connection ended with err. The first wait is the delay the server
// advised, when it advised one. It returns nil when the session is over:
// closed, or ended because reconnecting is pointless.
func (s *Session) reconnect(b *backoff, err error, advice func() (bool, bool), advised time.Duration) *Client {
	again := s.reconnectable(err, advice)
	for s.ctx.Err() == nil {
		if !again {
			s.notifyDisconnect(err, false, 0)
			s.stop(err)
			return nil
		}
		d := b.next()
		if advised > 0 {
			d, advised = advised, 0
		}
		s.notifyDisconnect(err, true, d)
		if !sleep(s.ctx, d) {
			return nil
		}
		ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
		var c *Client
		c, err = s.dial(ctx)
		cancel()
		if err == nil {
			return c
		}
		again = s.reconnectable(err, nil)
	}
	return nil
}

func (s *Session) notifyDisconnect(err error, reconnect bool, delay time.Duration) {
	if f := s.opts.OnDisconnect; f != nil && s.ctx.Err() == nil {
		f(DisconnectEvent{Err: err, Reconnect: reconnect, Delay: delay})
	}
}

// reconnectable reports whether a connection that ended (or failed to
// open) with err is worth opening again. A disconnect follows the
// server's advice: the reconnect flag of its disconnect push when advice
// has one, otherwise the code's range. A connect refused with a protocol
// error (such as a bad token) is final unless the error is temporary, or
// the token expired and SessionOptions.Token can get a fresh one.
func (s *Session) reconnectable(err error, advice func() (reconnect, ok bool)) bool {
	if s.opts.Token != nil && errors.Is(err, protocol.ErrTokenExpired) {
		return true
	}
	var d protocol.Disconnect
	if errors.As(err, &d) {
		if advice != nil {
			if r, ok := advice(); ok {
				return r
			}
		}
		return d.Reconnect()
	}
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return temporary(perr)
	}
	return !errors.Is(err, ErrClosed)
}

// temporary reports whether a command refused with e may succeed later.
func temporary(e *protocol.Error) bool {
	return errors.Is(e, protocol.ErrInternal) || errors.Is(e, protocol.ErrBrokerUnavailable) ||
		errors.Is(e, protocol.ErrTooManyRequests)
}

// sleep waits for d; it reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// attach makes c the current connection and subscribes it to every
// channel of the session, recovering where there is a position.
func (s *Session) attach(c *Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = c
	close(s.up)
	s.down = make(chan struct{})
	for _, sub := range s.subs {
		s.subscribeLocked(c, sub)
	}
}

// detach forgets the current connection, which has ended.
func (s *Session) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = nil
	s.up = make(chan struct{})
	close(s.down)
	for _, sub := range s.subs {
		sub.conn, sub.live = nil, false
	}
}

// end records why the session is over, unless it already is.
func (s *Session) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.over)
	}
}

// stop ends the session after a final disconnect: the delivery goroutine
// handles what is queued, then exits.
func (s *Session) stop(err error) {
	s.end(err)
	select {
	case s.events <- event{kind: evEnd}:
	case <-s.ctx.Done():
	}
}

// exited is called by each of the two goroutines as it returns.
func (s *Session) exited() {
	if s.running.Add(-1) == 0 {
		close(s.done)
	}
}

// closeNormal is the close frame the session sends when it drops a
// connection itself (its queue overflowed, or a stream had a gap).
var closeNormal = ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
