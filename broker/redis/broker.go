package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

var (
	_ broker.Broker          = (*Broker)(nil)
	_ broker.PresenceManager = (*Broker)(nil)
)

var (
	errClosed       = fmt.Errorf("redis: %w", broker.ErrClosed)
	errStarted      = errors.New("redis: broker already started")
	errNotStarted   = errors.New("redis: broker not started")
	errNilHandler   = errors.New("redis: nil event handler")
	errNilInfo      = errors.New("redis: nil client info")
	errEmptyChannel = errors.New("redis: empty channel name")
)

// Broker is a broker.Broker and a broker.PresenceManager on Redis. Its
// methods are safe for concurrent use. Create it with New, call Start once,
// and Close it when done.
type Broker struct {
	cfg     Config
	opt     rueidis.ClientOption // what client was made with
	client  rueidis.Client
	sharded bool   // a Cluster: sharded pub/sub (SPUBLISH, SSUBSCRIBE)
	term    string // the scripts' term mode (see termLua)
	seed    maphash.Seed
	handler broker.EventHandler // set by Start
	workers []*worker           // set by Start
	subs    *subscriptions      // set by Start
	terms   termReadings        // the masters' terms, read to settle TERM errors

	lifeMu    sync.Mutex // orders Start against Close
	started   bool
	closed    atomic.Bool
	closeOnce sync.Once
	ctx       context.Context // the broker's lifetime, canceled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the pub/sub goroutine and the workers

	dropped       atomic.Uint64 // pub/sub messages dropped on full worker queues
	probeFailures atomic.Uint64 // pub/sub connections replaced for not returning a probe
	reconnects    atomic.Uint64 // pub/sub connections lost and opened again
	rewinds       atomic.Uint64 // epochs renewed because Redis may have lost writes
	probesBack    atomic.Uint64 // probe tokens that came back (for tests)
	id            string        // random, names this broker's probe channels

	// testHookReconnect, if set before Start, is called by the pub/sub
	// goroutine before each reconnection attempt (not the first
	// connection), so tests can act while the node is disconnected.
	testHookReconnect func()
	// testHookTermReading, if set before the first publication, is called
	// by masterTerms before it reads the Cluster.
	testHookTermReading func()
}

// New connects to the Redis at cfg.URL, checks that it answers within ctx
// and cfg.Timeout, and loads the broker's Lua scripts. It returns an error
// wrapping broker.ErrUnavailable when Redis cannot be reached. The broker
// delivers nothing until Start.
func New(ctx context.Context, cfg Config) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opt, err := rueidis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// rueidis asks the first address whether it is a Cluster node, and
	// uses the sentinels when the URL names a master_set.
	opt.DisableCache = true
	opt.DisableRetry = true // fail fast: the caller decides whether to retry
	// A pipelined connection has a reader goroutine that notices at once
	// when Redis goes away, so the next call dials again instead of
	// failing on the dead socket.
	opt.AlwaysPipelining = true
	opt.Dialer.Timeout = cfg.Timeout
	opt.ConnWriteTimeout = 5 * cfg.Timeout
	if opt.ClientName == "" {
		opt.ClientName = "redcast"
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		if client != nil {
			client.Close()
		}
		return nil, fmt.Errorf("redis: connect: %w: %w", broker.ErrUnavailable, err)
	}
	b := &Broker{cfg: cfg, opt: opt, client: client, seed: maphash.MakeSeed(), id: rand.Text()[:12]}
	b.sharded = client.Mode() == rueidis.ClientModeCluster
	b.term = termMode(client)
	if err := b.loadScripts(ctx); err != nil {
		client.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("redis: load scripts: %w: %w", broker.ErrUnavailable, err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// loadScripts loads the Lua scripts, so that the first calls find them:
// on every node of a Cluster (one that is down is skipped: EVALSHA falls
// back to EVAL), or on the one Redis. It fails when no node answers.
func (b *Broker) loadScripts(ctx context.Context) error {
	targets := []rueidis.Client{b.client}
	if b.sharded {
		targets = slices.Collect(maps.Values(b.client.Nodes()))
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var firstErr error
	loaded := false
	for _, c := range targets {
		cmds := make(rueidis.Commands, len(allScripts))
		for i, src := range allScripts {
			cmds[i] = c.B().ScriptLoad().Script(src).Build()
		}
		var err error
		for _, r := range c.DoMulti(ctx, cmds...) {
			err = cmp.Or(err, r.Error())
		}
		if err == nil {
			loaded = true
		}
		firstErr = cmp.Or(firstErr, err)
	}
	if loaded {
		return nil
	}
	return firstErr
}

// Start makes the broker deliver to h: it starts the delivery workers and
// the goroutine that owns the pub/sub connection, and returns once that
// connection is up. If it cannot connect (or ctx ends first), Start closes
// the broker and returns an error wrapping broker.ErrUnavailable (or ctx's
// error). It may be called only once.
func (b *Broker) Start(ctx context.Context, h broker.EventHandler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h == nil {
		return errNilHandler
	}
	b.lifeMu.Lock()
	switch {
	case b.closed.Load():
		b.lifeMu.Unlock()
		return errClosed
	case b.started:
		b.lifeMu.Unlock()
		return errStarted
	}
	b.started, b.handler = true, h
	b.workers = make([]*worker, b.cfg.Workers)
	for i := range b.workers {
		w := newWorker(b)
		b.workers[i] = w
		b.wg.Go(func() { w.run(b.ctx) })
	}
	b.subs = newSubscriptions(b)
	b.wg.Go(func() { b.subs.run(b.ctx) })
	b.wg.Go(func() { b.subs.probeLoop(b.ctx) })
	b.lifeMu.Unlock()

	var err error
	select {
	case <-b.subs.firstAttempt:
		err = b.subs.firstErr
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		b.Close()
		return err
	}
	return nil
}

// Ready reports whether the broker is connected to Redis: its pub/sub
// connection is up and every channel is subscribed. The node's /readyz
// reports it.
func (b *Broker) Ready() bool {
	if b.closed.Load() {
		return false
	}
	b.lifeMu.Lock()
	subs := b.subs
	b.lifeMu.Unlock()
	return subs != nil && subs.isReady()
}

// Dropped returns how many pub/sub messages were dropped because a
// delivery worker's queue was full. Each drop makes the broker read the
// channel's history to deliver what was dropped (or let the node see the
// gap), so a drop is not a silent loss.
func (b *Broker) Dropped() uint64 { return b.dropped.Load() }

// Reconnects returns how many times a pub/sub connection was lost (to a
// network error, a killed connection or a failed probe) and had to be
// opened again.
func (b *Broker) Reconnects() uint64 { return b.reconnects.Load() }

// Publish runs one Lua script that gives the channel an epoch if it has
// none (or a new one if its epoch began on another master: see termLua),
// assigns the next offset, appends the publication to the channel's
// stream (trimmed to about opts.HistorySize entries, expiring after the
// history TTL; HistorySize 0 deletes the stream) and publishes it on the
// channel's pub/sub channel with its offset and epoch: one round trip.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts broker.PublishOptions) (protocol.StreamPosition, error) {
	if err := b.check(ctx, channel); err != nil {
		return protocol.StreamPosition{}, err
	}
	keys, args := b.publishArgs(channel, data, opts)
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	return b.parsePublish(ctx, b.runScript(octx, publishScript, publishSHA, keys, args))
}

var _ broker.BatchPublisher = (*Broker)(nil)

// PublishMany implements broker.BatchPublisher: the publish scripts of
// every request go to Redis in one pipeline (on a Cluster, one per node),
// so that a batch costs about one round trip. Scripts of one channel run
// in request order.
func (b *Broker) PublishMany(ctx context.Context, reqs []broker.PublishRequest) []broker.PublishResult {
	out := make([]broker.PublishResult, len(reqs))
	execs := make([]rueidis.LuaExec, 0, len(reqs))
	idx := make([]int, 0, len(reqs))
	for i, r := range reqs {
		if err := b.check(ctx, r.Channel); err != nil {
			out[i].Err = err
			continue
		}
		keys, args := b.publishArgs(r.Channel, r.Data, r.Options)
		execs = append(execs, rueidis.LuaExec{Keys: keys, Args: args})
		idx = append(idx, i)
	}
	if len(execs) == 0 {
		return out
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for j, res := range b.runScripts(octx, publishScript, publishSHA, true, execs) {
		i := idx[j]
		out[i].Position, out[i].Err = b.parsePublish(ctx, res)
	}
	return out
}

// publishArgs returns the keys and arguments of the publish script.
func (b *Broker) publishArgs(channel string, data []byte, opts broker.PublishOptions) (keys, args []string) {
	ttl := opts.HistoryTTL
	if ttl <= 0 {
		ttl = b.cfg.HistoryTTL
	}
	tag := b.tag(channel)
	keys = []string{tag + ":s", tag + ":m"}
	args = []string{
		tag,
		encodeBody(time.Now().UnixMilli(), opts.From, opts.Publisher, data),
		strconv.Itoa(max(opts.HistorySize, 0)),
		ms(ttl),
		ms(max(b.cfg.StreamTTL, ttl)),
		newEpoch(),
		b.publishCommand(),
		"", // the idempotency key's TTL, below
		b.term,
		"", // the term to adopt: last, see settleTerms
	}
	if opts.IdempotencyKey != "" {
		ttl := opts.IdempotencyTTL
		if ttl <= 0 {
			ttl = broker.DefaultIdempotencyTTL
		}
		keys = append(keys, tag+":i:"+opts.IdempotencyKey)
		args[7] = ms(ttl)
	}
	return keys, args
}

// parsePublish reads the publish script's reply {offset, epoch,
// renewed, duplicate}.
func (b *Broker) parsePublish(ctx context.Context, res rueidis.RedisResult) (protocol.StreamPosition, error) {
	reply, err := res.ToArray()
	if err != nil {
		return protocol.StreamPosition{}, b.wrap(ctx, "publish", err)
	}
	if len(reply) != 4 {
		return protocol.StreamPosition{}, fmt.Errorf("redis: publish: unexpected reply of %d elements", len(reply))
	}
	offset, err := reply[0].AsInt64()
	if err != nil {
		return protocol.StreamPosition{}, fmt.Errorf("redis: publish: %w", err)
	}
	epoch, err := reply[1].ToString()
	if err != nil {
		return protocol.StreamPosition{}, fmt.Errorf("redis: publish: %w", err)
	}
	b.countRenewed(reply[2])
	return protocol.StreamPosition{Offset: uint64(offset), Epoch: epoch}, nil
}

// countRenewed counts a script's report that it renewed an epoch.
func (b *Broker) countRenewed(flag rueidis.RedisMessage) {
	if n, err := flag.AsInt64(); err == nil && n == 1 {
		b.rewinds.Add(1)
	}
}

// PublishJoin publishes a join on the channel's pub/sub channel, so that it
// travels in order with the channel's publications.
func (b *Broker) PublishJoin(ctx context.Context, channel string, info *protocol.ClientInfo) error {
	return b.publishPresence(ctx, channel, msgJoin, info)
}

// PublishLeave publishes a leave on the channel's pub/sub channel.
func (b *Broker) PublishLeave(ctx context.Context, channel string, info *protocol.ClientInfo) error {
	return b.publishPresence(ctx, channel, msgLeave, info)
}

func (b *Broker) publishPresence(ctx context.Context, channel string, kind byte, info *protocol.ClientInfo) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	if info == nil {
		return errNilInfo
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	msg := encodePresenceMessage(kind, info)
	cmd := b.client.B().Publish().Channel(b.tag(channel)).Message(msg).Build()
	if b.sharded {
		cmd = b.client.B().Spublish().Channel(b.tag(channel)).Message(msg).Build()
	}
	if err := b.client.Do(octx, cmd).Error(); err != nil {
		return b.wrap(ctx, "publish presence", err)
	}
	return nil
}

// Subscribe subscribes this node to the channel's pub/sub channel. Calls
// that arrive together share SUBSCRIBE commands; Subscribe returns once
// Redis confirmed the subscription (and the broker noted the channel's
// position, to fill gaps after an outage). While the pub/sub connection is
// down it fails at once with an error wrapping broker.ErrUnavailable.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	subs, err := b.subscriptionsOrErr()
	if err != nil {
		return err
	}
	return subs.subscribe(ctx, channel)
}

// Unsubscribe stops delivery of the channel at once; the UNSUBSCRIBE
// command follows asynchronously (batched, and skipped if the channel is
// subscribed again before it is sent). It does not wait for Redis and does
// not fail while Redis is unreachable.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	subs, err := b.subscriptionsOrErr()
	if err != nil {
		return err
	}
	subs.unsubscribe(channel)
	return nil
}

// followsMaster reports whether the broker's Redis master may change
// under it (Cluster and Sentinel), so that a pub/sub connection must check
// that it reached a master.
func (b *Broker) followsMaster() bool { return b.client.Mode() != rueidis.ClientModeStandalone }

// publishCommand is the command that publishes on a channel's pub/sub
// channel: SPUBLISH on a Cluster, so that a publication only travels
// within the shard that owns the channel.
func (b *Broker) publishCommand() string {
	if b.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// Close stops delivery, closes the pub/sub connection and the Redis
// client, and waits for every goroutine the broker started. When it
// returns the handler is no longer called, and other methods return errors
// wrapping broker.ErrClosed. Close may be called more than once; it always
// returns nil.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.lifeMu.Lock()
		b.closed.Store(true)
		b.lifeMu.Unlock()
		if b.cancel != nil {
			b.cancel()
		}
		b.wg.Wait()
		if b.client != nil {
			b.client.Close()
		}
	})
	return nil
}

// check returns the error a method returns before doing anything: ctx's,
// or errClosed, or one for a channel name that cannot be used.
func (b *Broker) check(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return errClosed
	}
	if channel == "" {
		return errEmptyChannel
	}
	return nil
}

// subscriptionsOrErr returns the subscription manager, or an error if Start was not
// called (or the broker is closed).
func (b *Broker) subscriptionsOrErr() (*subscriptions, error) {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	switch {
	case b.closed.Load():
		return nil, errClosed
	case b.subs == nil:
		return nil, errNotStarted
	}
	return b.subs, nil
}

// wrap turns an error of a Redis call made for a caller with ctx into
// what the broker returns: errClosed after Close, ctx's error if the caller
// gave up, a plain error for a Redis error reply, and an error wrapping
// broker.ErrUnavailable for everything that means Redis cannot serve now
// (no connection, timeout, loading, busy).
func (b *Broker) wrap(ctx context.Context, op string, err error) error {
	if b.closed.Load() {
		return errClosed
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if rerr, ok := rueidis.IsRedisErr(err); ok && !unavailableReply(rerr) {
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, broker.ErrUnavailable, err)
}

// unavailableReply reports whether a Redis error reply means the server
// cannot serve right now rather than that the command was wrong.
func unavailableReply(err *rueidis.RedisError) bool {
	if err.IsLoading() || err.IsTryAgain() || err.IsClusterDown() {
		return true
	}
	msg := err.Error()
	// TERM: a channel's epoch whose term the broker could not settle
	// (see runScripts); the next call settles it.
	for _, p := range []string{"BUSY", "MASTERDOWN", "READONLY", "OOM", "NOREPLICAS", "TERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// tag returns the channel's pub/sub channel, which is also the common
// front of its keys: the channel in braces is a hash tag, so every key of
// the channel lives in one Cluster slot.
func (b *Broker) tag(channel string) string {
	return b.cfg.Prefix + ":{" + channel + "}"
}

// channelOf returns the channel of a pub/sub channel named by tag.
func (b *Broker) channelOf(pubsubChannel string) (string, bool) {
	rest, ok := strings.CutPrefix(pubsubChannel, b.cfg.Prefix)
	if !ok {
		return "", false
	}
	rest, ok = strings.CutPrefix(rest, ":{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "}")
}

// newEpoch returns a random name for a new lifetime of a channel's stream.
func newEpoch() string { return rand.Text()[:8] }

// ms formats d in whole milliseconds, at least 1 (PEXPIRE 0 deletes).
func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

// rewind starts a new epoch for a channel whose stream is behind seen (see
// rewindLua) and returns its position afterwards.
func (b *Broker) rewind(ctx context.Context, channel string, seen protocol.StreamPosition) (protocol.StreamPosition, error) {
	tag := b.tag(channel)
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	reply, err := rewindScript.Exec(octx, b.client, []string{tag + ":s", tag + ":m"},
		[]string{seen.Epoch, strconv.FormatUint(seen.Offset, 10), newEpoch(), b.term}).ToArray()
	if err != nil {
		return protocol.StreamPosition{}, b.wrap(ctx, "rewind", err)
	}
	// Counted once the new epoch is in Redis, so that whoever sees the
	// count can publish in it.
	b.rewinds.Add(1)
	if len(reply) != 2 {
		return protocol.StreamPosition{}, fmt.Errorf("redis: rewind: unexpected reply of %d elements", len(reply))
	}
	off, err1 := reply[0].AsInt64()
	epoch, err2 := reply[1].ToString()
	if err := errors.Join(err1, err2); err != nil {
		return protocol.StreamPosition{}, fmt.Errorf("redis: rewind: %w", err)
	}
	return protocol.StreamPosition{Offset: uint64(off), Epoch: epoch}, nil
}

// Rewinds returns how many times the broker started a new epoch for a
// channel because Redis may have lost writes of it: the channel's epoch
// began on another master (behind Sentinel or on a Cluster: a failover or
// a restart of the master since; see termLua), or its stream was found
// behind what the broker had delivered.
func (b *Broker) Rewinds() uint64 { return b.rewinds.Load() }
