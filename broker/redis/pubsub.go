package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

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
//
// The links are in links.go, which master a channel belongs on (Cluster
// slot routing) in routing.go, and the commands that bring Redis in line
// with what is wanted in reconcile.go.
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
