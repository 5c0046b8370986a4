package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
)

// subscriptions owns the node's one pub/sub connection. A single goroutine
// (run) sends every SUBSCRIBE and UNSUBSCRIBE on it, so commands for one
// channel are never reordered, and requests that arrive while it is busy
// are sent together in the next command: a burst of thousands of Subscribe
// calls costs a few commands. When the connection breaks, run reconnects
// with exponential backoff and jitter, subscribes every channel again and
// has the workers fill what was published meanwhile from history.
type subscriptions struct {
	b    *Broker
	kick chan struct{} // wakes run; capacity 1

	firstAttempt chan struct{} // closed after the first connection attempt
	firstErr     error         // its error, set before firstAttempt is closed

	mu      sync.Mutex
	ready   bool                   // connected, and every wanted channel subscribed
	want    map[string]*subRequest // channels the node is subscribed (or subscribing) to
	have    map[string]struct{}    // channels subscribed on the current connection
	pending []string               // Subscribe calls run has not handled yet
	stale   []string               // channels to unsubscribe from
}

// subRequest is a channel the node subscribed to.
type subRequest struct {
	done      chan struct{} // closed when confirmed or failed
	err       error         // why it failed; set before done is closed
	confirmed bool
}

func newSubscriptions(b *Broker) *subscriptions {
	return &subscriptions{
		b:            b,
		kick:         make(chan struct{}, 1),
		firstAttempt: make(chan struct{}),
		want:         make(map[string]*subRequest),
		have:         make(map[string]struct{}),
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
		s.b.workerFor(ch).add(ch)
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
	defer s.mu.Unlock()
	if r.confirmed {
		return nil
	}
	s.dropLocked(ch, r, ctx.Err())
	return ctx.Err()
}

// unsubscribe stops delivery of the channel now and queues its
// UNSUBSCRIBE.
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
}

// dropLocked forgets a wanted channel, failing its request with err if it
// was not confirmed yet, and queues an UNSUBSCRIBE if needed.
func (s *subscriptions) dropLocked(ch string, r *subRequest, err error) {
	if s.want[ch] != r {
		return
	}
	delete(s.want, ch)
	s.b.workerFor(ch).remove(ch)
	if !r.confirmed {
		r.err = err
		close(r.done)
	}
	if _, ok := s.have[ch]; ok {
		s.stale = append(s.stale, ch)
	}
}

// run owns the pub/sub connection until ctx ends.
func (s *subscriptions) run(ctx context.Context) {
	defer s.shutdown()
	delay := s.b.cfg.MinReconnectDelay
	first := true
	for {
		conn, errc, err := s.connect(ctx)
		if first {
			s.firstErr, first = err, false
			close(s.firstAttempt)
		}
		if err == nil {
			delay = s.b.cfg.MinReconnectDelay
			err = s.serve(ctx, conn, errc)
			conn.Close()
		}
		if ctx.Err() != nil {
			return // closed: shutdown fails what waits
		}
		s.disconnected(err)
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

// connect opens a pub/sub connection and subscribes every wanted channel
// on it. On success the broker is ready again and the workers are asked to
// deliver from history whatever was published while it was not.
func (s *subscriptions) connect(ctx context.Context) (rueidis.DedicatedClient, <-chan error, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	conn, _ := s.b.client.Dedicate()
	errc := conn.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: s.b.route})
	select {
	case err := <-errc:
		conn.Close()
		return nil, nil, unavailable("connect pub/sub", err)
	default:
	}
	s.mu.Lock()
	chans := make([]string, 0, len(s.want))
	for ch := range s.want {
		chans = append(chans, ch)
	}
	s.mu.Unlock()
	if err := s.send(ctx, conn, true, chans); err != nil {
		conn.Close()
		return nil, nil, err
	}
	s.mu.Lock()
	for _, ch := range chans {
		s.have[ch] = struct{}{}
		if s.want[ch] == nil { // unsubscribed meanwhile
			s.stale = append(s.stale, ch)
		}
	}
	s.ready = true
	s.mu.Unlock()
	if len(chans) > 0 {
		for _, w := range s.b.workers {
			w.markAllDirty()
		}
	}
	s.wakeRun()
	return conn, errc, nil
}

// serve handles subscription requests until the connection breaks or ctx
// ends.
func (s *subscriptions) serve(ctx context.Context, conn rueidis.DedicatedClient, errc <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return unavailable("pub/sub connection lost", err)
		case <-s.kick:
			if err := s.reconcile(ctx, conn); err != nil {
				return err
			}
		}
	}
}

// reconcile sends the UNSUBSCRIBE and SUBSCRIBE commands that requests
// since the last call need, then confirms the subscribed channels.
func (s *subscriptions) reconcile(ctx context.Context, conn rueidis.DedicatedClient) error {
	s.mu.Lock()
	var unsub, sub, confirm []string
	seen := make(map[string]struct{}, len(s.stale)+len(s.pending))
	for _, ch := range s.stale {
		if _, ok := s.have[ch]; ok && s.want[ch] == nil {
			if _, dup := seen[ch]; !dup {
				seen[ch] = struct{}{}
				unsub = append(unsub, ch)
			}
		}
	}
	s.stale = s.stale[:0]
	clear(seen)
	for _, ch := range s.pending {
		r := s.want[ch]
		if r == nil || r.confirmed {
			continue
		}
		if _, dup := seen[ch]; dup {
			continue
		}
		seen[ch] = struct{}{}
		confirm = append(confirm, ch)
		if _, ok := s.have[ch]; !ok {
			sub = append(sub, ch)
		}
	}
	s.pending = s.pending[:0]
	reqs := make([]*subRequest, len(confirm))
	for i, ch := range confirm {
		reqs[i] = s.want[ch]
	}
	s.mu.Unlock()

	if len(unsub) > 0 {
		if err := s.send(ctx, conn, false, unsub); err != nil {
			return err
		}
		s.mu.Lock()
		for _, ch := range unsub {
			delete(s.have, ch)
		}
		s.mu.Unlock()
	}
	if len(sub) > 0 {
		if err := s.send(ctx, conn, true, sub); err != nil {
			return err
		}
		s.mu.Lock()
		for _, ch := range sub {
			s.have[ch] = struct{}{}
			if s.want[ch] == nil { // unsubscribed while the command was on its way
				s.stale = append(s.stale, ch)
			}
		}
		again := len(s.stale) > 0
		s.mu.Unlock()
		if again {
			s.wakeRun()
		}
	}
	if len(confirm) == 0 {
		return nil
	}
	// Note each channel's position, so that a later outage can be filled
	// from history even if nothing was delivered by then.
	calls := make([]historyCall, len(confirm))
	for i, ch := range confirm {
		calls[i] = historyCall{channel: ch}
	}
	results, errs := s.b.historyMany(ctx, calls)
	s.mu.Lock()
	failed := false
	for i, ch := range confirm {
		r := reqs[i]
		if s.want[ch] != r || r.confirmed {
			continue // unsubscribed or abandoned meanwhile
		}
		if errs[i] != nil {
			s.dropLocked(ch, r, errs[i]) // and unsubscribe in the next round
			failed = true
			continue
		}
		s.b.workerFor(ch).setFloor(ch, results[i].Position)
		r.confirmed = true
		close(r.done)
	}
	s.mu.Unlock()
	if failed {
		s.wakeRun()
	}
	return nil
}

// send subscribes to (or unsubscribes from) channels in commands of at most
// SubscribeBatch channels. A command returns once Redis executed it:
// Redis subscribes all channels of a command before it answers, so every
// publication made afterwards reaches this connection.
func (s *subscriptions) send(ctx context.Context, conn rueidis.DedicatedClient, subscribe bool, chans []string) error {
	n := s.b.cfg.SubscribeBatch
	for start := 0; start < len(chans); start += n {
		part := chans[start:min(start+n, len(chans))]
		names := make([]string, len(part))
		for i, ch := range part {
			names[i] = s.b.tag(ch)
		}
		var cmd rueidis.Completed
		if subscribe {
			cmd = conn.B().Subscribe().Channel(names...).Build()
		} else {
			cmd = conn.B().Unsubscribe().Channel(names...).Build()
		}
		octx, cancel := context.WithTimeout(ctx, s.b.cfg.Timeout)
		err := conn.Do(octx, cmd).Error()
		cancel()
		if err != nil {
			if subscribe {
				return unavailable("subscribe", err)
			}
			return unavailable("unsubscribe", err)
		}
	}
	return nil
}

// disconnected records that the connection is gone: the broker is not
// ready, nothing is subscribed, and Subscribe calls still waiting fail.
// Confirmed channels stay wanted and are subscribed again on reconnection.
func (s *subscriptions) disconnected(err error) {
	if err == nil {
		err = unavailable("pub/sub", nil)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = false
	clear(s.have)
	for ch, r := range s.want {
		if !r.confirmed {
			s.dropLocked(ch, r, err)
		}
	}
	s.pending = s.pending[:0]
	s.stale = s.stale[:0]
}

// shutdown fails Subscribe calls still waiting when run returns.
func (s *subscriptions) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = false
	for ch, r := range s.want {
		if !r.confirmed {
			s.dropLocked(ch, r, errClosed)
		}
	}
}

// unavailable wraps err (which may be nil) as broker.ErrUnavailable.
func unavailable(op string, err error) error {
	if err == nil {
		return fmt.Errorf("redis: %s: %w", op, broker.ErrUnavailable)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, broker.ErrUnavailable, err)
}
