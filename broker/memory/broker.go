package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// numShards is how many independently locked maps hold the streams.
const numShards = 32

var _ broker.Broker = (*Broker)(nil)

var (
	errClosed     = fmt.Errorf("memory: %w", broker.ErrClosed)
	errStarted    = errors.New("memory: broker already started")
	errNilHandler = errors.New("memory: nil event handler")
)

// Config configures a Broker. The zero value of every field means the
// documented default, so Config{} is ready to use.
type Config struct {
	// HistoryTTL is how long a publication stays in history when its
	// PublishOptions.HistoryTTL is 0. Default 24h.
	HistoryTTL time.Duration
	// StreamTTL is how long a channel's offset and epoch are kept after its
	// last publication (or after the node unsubscribed, if later) once the
	// node is not subscribed to it and its history is empty. After that the
	// next publication starts a new epoch at offset 1. Default 24h.
	StreamTTL time.Duration
	// CleanupInterval is how often expired history and idle streams are
	// freed. Default a quarter of the smaller TTL, between 1s and 1m.
	CleanupInterval time.Duration
	// Now is the broker's clock, for tests. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = 24 * time.Hour
	}
	if c.StreamTTL <= 0 {
		c.StreamTTL = 24 * time.Hour
	}
	if c.CleanupInterval <= 0 {
		c.CleanupInterval = min(c.HistoryTTL, c.StreamTTL) / 4
		c.CleanupInterval = max(time.Second, min(time.Minute, c.CleanupInterval))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Broker is the embedded broker of a single node. Its methods are safe for
// concurrent use; Start must be called once before the others. It delivers
// to the EventHandler from the goroutine that publishes, holding the
// channel's lock (see the package documentation).
type Broker struct {
	cfg     Config
	seed    maphash.Seed
	shards  [numShards]shard
	handler broker.EventHandler // set by Start

	// Revocations keeps revoked tokens and blocked users (revocation.go).
	Revocations

	lifeMu    sync.Mutex // orders Start against Close
	started   bool
	closed    atomic.Bool
	closeOnce sync.Once
	quit      chan struct{}  // closed by Close to stop the cleanup goroutine
	wg        sync.WaitGroup // the cleanup goroutine
}

// shard holds the streams of the channels whose name hashes to it.
type shard struct {
	mu      sync.RWMutex
	streams map[string]*stream
}

// New returns a Broker configured by cfg. It does nothing until Start.
func New(cfg Config) *Broker {
	b := &Broker{cfg: cfg.withDefaults(), seed: maphash.MakeSeed(), quit: make(chan struct{})}
	for i := range b.shards {
		b.shards[i].streams = make(map[string]*stream)
	}
	return b
}

// Start makes the broker deliver to h and starts its cleanup goroutine. It
// may be called only once.
func (b *Broker) Start(ctx context.Context, h broker.EventHandler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h == nil {
		return errNilHandler
	}
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	switch {
	case b.closed.Load():
		return errClosed
	case b.started:
		return errStarted
	}
	b.started, b.handler = true, h
	b.wg.Go(b.cleanup)
	return nil
}

// Publish assigns the next offset of the channel to a copy of data, keeps it
// in history per opts and, if the node is subscribed to the channel,
// delivers it before returning.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts broker.PublishOptions) (protocol.StreamPosition, error) {
	if err := ctx.Err(); err != nil {
		return protocol.StreamPosition{}, err
	}
	now := b.cfg.Now()
	pub := &protocol.Publication{Time: now.UnixMilli(), Data: bytes.Clone(data), From: opts.From, Publisher: opts.Publisher}
	ttl := opts.HistoryTTL
	if ttl <= 0 {
		ttl = b.cfg.HistoryTTL
	}
	s, err := b.lock(channel, true, now.UnixNano())
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	defer s.mu.Unlock()
	if pos, dup := s.idempotent(opts.IdempotencyKey, now.UnixNano()); dup {
		return pos, nil
	}
	s.offset++
	s.lastActive = now.UnixNano()
	pub.Offset = s.offset
	s.add(pub, opts.HistorySize, now.Add(ttl).UnixNano())
	pos := s.position()
	s.remember(opts, pos, now)
	if s.subscribed && b.handler != nil {
		b.handler.HandlePublication(ctx, channel, pub, pos)
	}
	return pos, nil
}

// PublishJoin delivers a join to the handler if the node is subscribed to
// the channel.
func (b *Broker) PublishJoin(ctx context.Context, channel string, info *protocol.ClientInfo) error {
	return b.publishPresence(ctx, channel, info, true)
}

// PublishLeave delivers a leave to the handler if the node is subscribed to
// the channel.
func (b *Broker) PublishLeave(ctx context.Context, channel string, info *protocol.ClientInfo) error {
	return b.publishPresence(ctx, channel, info, false)
}

func (b *Broker) publishPresence(ctx context.Context, channel string, info *protocol.ClientInfo, join bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := b.lock(channel, false, b.cfg.Now().UnixNano())
	if err != nil || s == nil {
		return err // no stream, so no subscription
	}
	defer s.mu.Unlock()
	switch {
	case !s.subscribed || b.handler == nil:
	case join:
		b.handler.HandleJoin(ctx, channel, info)
	default:
		b.handler.HandleLeave(ctx, channel, info)
	}
	return nil
}

// Subscribe makes Publish, PublishJoin and PublishLeave deliver the
// channel's events to the handler, and keeps the channel's stream while
// subscribed.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, err := b.lock(channel, true, b.cfg.Now().UnixNano())
	if err != nil {
		return err
	}
	s.subscribed = true
	s.mu.Unlock()
	return nil
}

// Unsubscribe stops delivery of the channel. When it returns, the handler is
// no longer called for the channel.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := b.cfg.Now().UnixNano()
	s, err := b.lock(channel, false, now)
	if err != nil || s == nil {
		return err
	}
	s.subscribed = false
	s.lastActive = now // StreamTTL counts from here too
	s.mu.Unlock()
	return nil
}

// History returns the channel's position and the publications opts select,
// oldest first. A channel without a stream gets one, so that its epoch
// stays the same until its first publication.
func (b *Broker) History(ctx context.Context, channel string, opts broker.HistoryOptions) (broker.HistoryResult, error) {
	if err := ctx.Err(); err != nil {
		return broker.HistoryResult{}, err
	}
	now := b.cfg.Now().UnixNano()
	s, err := b.lock(channel, true, now)
	if err != nil {
		return broker.HistoryResult{}, err
	}
	defer s.mu.Unlock()
	s.expire(now)
	return s.history(opts), nil
}

// Close stops the cleanup goroutine, waits for it and forgets every stream.
// When Close returns the handler is no longer called, and other methods
// return errors wrapping broker.ErrClosed. Close may be called more than
// once; it always returns nil.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.lifeMu.Lock()
		b.closed.Store(true)
		close(b.quit)
		b.lifeMu.Unlock()
		// Wait out publishers that checked closed before it was set, and
		// make those still looking up a stream look again and see closed.
		for i := range b.shards {
			sh := &b.shards[i]
			sh.mu.Lock()
			for _, s := range sh.streams {
				s.mu.Lock()
				s.dropped = true
				s.mu.Unlock()
			}
			clear(sh.streams)
			sh.mu.Unlock()
		}
		b.wg.Wait()
	})
	return nil
}

func (b *Broker) shard(channel string) *shard {
	return &b.shards[maphash.String(b.seed, channel)%numShards]
}

// lock returns the channel's stream, locked, restarted if it was idle. It
// creates the stream if create is set, otherwise returns nil if there is
// none. After Close it returns errClosed.
func (b *Broker) lock(channel string, create bool, now int64) (*stream, error) {
	sh := b.shard(channel)
	for {
		if b.closed.Load() {
			return nil, errClosed
		}
		sh.mu.RLock()
		s := sh.streams[channel]
		sh.mu.RUnlock()
		if s == nil {
			if !create {
				return nil, nil
			}
			sh.mu.Lock()
			if b.closed.Load() { // Close may have emptied the shard already
				sh.mu.Unlock()
				return nil, errClosed
			}
			if s = sh.streams[channel]; s == nil {
				s = newStream(channel, now)
				sh.streams[channel] = s
			}
			sh.mu.Unlock()
		}
		s.mu.Lock()
		if s.dropped {
			s.mu.Unlock()
			continue
		}
		if b.closed.Load() { // checked under s.mu: Close waits for us, or we see it
			s.mu.Unlock()
			return nil, errClosed
		}
		s.expireOldest(now)
		s.restartIfIdle(now, int64(b.cfg.StreamTTL))
		return s, nil
	}
}
