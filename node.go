package redcast

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/metrics"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// Version is the server version reported to clients in the connect reply.
const Version = "0.1.0"

// cleanupTimeout bounds the broker calls made when a client leaves (its own
// context is already cancelled then).
const cleanupTimeout = 5 * time.Second

// Node is one redcast server process: it owns the hub, the broker and
// presence manager it was given, and the registry of connected clients.
type Node struct {
	cfg      Config
	broker   broker.Broker
	presence broker.PresenceManager
	hub      *hub.Hub
	log      *slog.Logger
	metrics  *metrics.Metrics
	policy   auth.Policy
	// revocations keeps revoked tokens and blocked users (revoke.go).
	revocations broker.RevocationStore

	// chanLocks serialise, per channel, the local subscribe/unsubscribe that
	// decide whether the node subscribes in the broker.
	lockSeed  maphash.Seed
	chanLocks [64]sync.Mutex

	// stop ends the node's own goroutines (the presence refresher); wg
	// waits for them.
	stop context.CancelFunc
	wg   sync.WaitGroup

	// batch publishes the publishes of one frame together, when the broker
	// can (nil otherwise).
	batch broker.BatchPublisher
	// historyBatch shares the history reads of concurrent subscribes.
	historyBatch *historyBatch
	// table holds what the node knows of all nodes (see nodes.go).
	table *nodeTable
	// controls queues control requests from other nodes (see control.go).
	controls chan []byte
	// reservedUsers are the prefixes of user names that connects may not
	// claim (ReserveUsers); set before the node serves.
	reservedUsers []string
	// missedControl is set when a full queue dropped a control request:
	// the control goroutine then rechecks every connection against the
	// revocation store, which has what a dropped revocation would have
	// closed.
	missedControl atomic.Bool
	// outbox configures the outboxes of the node's connections; its Clock
	// is shared by all of them.
	outbox outbox.Options

	mu       sync.Mutex
	clients  map[*Client]struct{}
	draining bool
	gone     chan struct{} // signalled when a client unregisters during drain

	// userPresence is told of users entering and leaving channels (see
	// OnUserPresence); nil: nobody listens. Set before the node serves.
	userPresence func(ctx context.Context, ch string, entered bool, info *protocol.ClientInfo)
	// life tells listeners the cluster's transitions (see lifecycle.go).
	life *lifecycle
	// trans hands transitions to listeners through the presence
	// manager's transition log, when it keeps one (see transitions.go).
	trans *transitions
	// surveys are the subscriber counts under way (survey.go).
	surveys surveys
}

// Deps are the parts a Node is built from. Nil fields mean the embedded
// defaults: the memory broker and memory presence, and a logger that
// discards.
type Deps struct {
	Broker   broker.Broker
	Presence broker.PresenceManager
	Logger   *slog.Logger
	// Metrics receive the node's counts; nil keeps them unexported.
	Metrics *metrics.Metrics
	// Revocations keeps revoked tokens and blocked users; nil: the
	// broker's, when it keeps them (the memory and Redis brokers do).
	Revocations broker.RevocationStore
}

// NewNode returns a node with cfg (zero values mean defaults) and deps.
// Call Start before serving clients.
func NewNode(cfg Config, deps Deps) *Node {
	n := &Node{
		cfg:      cfg.withDefaults(),
		broker:   deps.Broker,
		presence: deps.Presence,
		log:      deps.Logger,
		metrics:  deps.Metrics,
		hub:      hub.New(),
		lockSeed: maphash.MakeSeed(),
		clients:  make(map[*Client]struct{}),
		gone:     make(chan struct{}, 1),
		controls: make(chan []byte, controlQueueSize),
		life:     newLifecycle(),
		trans:    newTransitions(),
	}
	n.table = newNodeTable(n.cfg.NodeName)
	n.outbox = outbox.Options{
		MaxMessages: n.cfg.QueueMaxMessages,
		MaxBytes:    n.cfg.QueueMaxBytes,
		FlushWindow: n.cfg.FlushWindow,
		Clock:       outbox.NewClock(),
	}
	n.historyBatch = newHistoryBatch()
	n.policy = auth.Policy{Namespaces: n.cfg.Namespaces, Verifier: n.cfg.Verifier, MaxChannelLength: n.cfg.MaxChannelLength}
	if n.broker == nil {
		n.broker = memory.New(memory.Config{})
	}
	if n.presence == nil {
		n.presence = memory.NewPresence()
	}
	n.batch, _ = n.broker.(broker.BatchPublisher)
	n.initRevocations(deps.Revocations)
	if n.metrics == nil {
		n.metrics = metrics.New(nil)
	}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return n
}

// Config returns the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// Start starts the broker's delivery to this node.
func (n *Node) Start(ctx context.Context) error {
	if err := n.broker.Start(ctx, n); err != nil {
		return fmt.Errorf("redcast: start broker: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	n.stop = stop
	n.wg.Go(func() { n.handleControls(bg) })
	if err := n.broker.Subscribe(ctx, controlChannel); err != nil {
		stop()
		n.wg.Wait()
		return fmt.Errorf("redcast: subscribe to control channel: %w", err)
	}
	n.wg.Go(func() { n.announce(bg, n.cfg.NodeInfoInterval) })
	n.wg.Go(func() { n.watchReconnects(bg) })
	n.startPresence(bg)
	return nil
}

// Shutdown disconnects every client with code 3001 (reconnect advised,
// after a random delay of up to Config.ReconnectSpread), letting each
// flush what is queued for it first; it waits until they are gone or ctx
// ends, then closes the broker. From the moment it is called the node is
// not Ready and refuses new connections.
func (n *Node) Shutdown(ctx context.Context) error {
	n.Drain()
	for _, c := range n.clientList() {
		d := protocol.DisconnectShutdown
		if n.cfg.ReconnectSpread > 0 {
			d.Delay = mrand.N(n.cfg.ReconnectSpread) + time.Millisecond
		}
		c.Disconnect(d)
	}
	var err error
	for err == nil && n.NumClients() > 0 {
		select {
		case <-n.gone:
		case <-ctx.Done():
			err = fmt.Errorf("redcast: shutdown: %d clients still connected: %w", n.NumClients(), ctx.Err())
		}
	}
	if n.stop != nil {
		n.stop()
		n.wg.Wait()
	}
	if cerr := n.broker.Close(); cerr != nil && !errors.Is(cerr, broker.ErrClosed) {
		err = errors.Join(err, fmt.Errorf("redcast: close broker: %w", cerr))
	}
	return err
}

// Drain marks the node as shutting down without disconnecting anyone: it is
// not Ready and refuses new connections. Shutdown does it too; calling it
// first, some time before, lets load balancers notice.
func (n *Node) Drain() {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
}

// Draining reports whether the node is shutting down (Drain or Shutdown
// was called): it takes no new connections.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// Ready reports whether the node can serve: it is not shutting down and its
// broker is reachable (for brokers that can tell, by a Ready() bool method).
func (n *Node) Ready() bool {
	if n.Draining() {
		return false
	}
	if r, ok := n.broker.(interface{ Ready() bool }); ok {
		return r.Ready()
	}
	return true
}

func (n *Node) chanLock(ch string) *sync.Mutex {
	return &n.chanLocks[maphash.String(n.lockSeed, ch)%uint64(len(n.chanLocks))]
}

// addSubscriber puts s in the hub (with joinLeave, for the channel's joins
// and leaves too) and, for the channel's first local subscriber,
// subscribes the node in the broker.
func (n *Node) addSubscriber(ctx context.Context, ch string, s hub.Subscriber, joinLeave bool) error {
	lk := n.chanLock(ch)
	lk.Lock()
	defer lk.Unlock()
	first, added := n.hub.Add(ch, s, joinLeave)
	if !added {
		return protocol.ErrAlreadySubscribed
	}
	if first {
		if err := n.broker.Subscribe(ctx, ch); err != nil {
			n.hub.Remove(ch, s)
			n.metrics.BrokerErrors.WithLabelValues("subscribe").Inc()
			return fmt.Errorf("redcast: subscribe %q in broker: %w", ch, err)
		}
		n.metrics.Channels.Inc()
		n.occupy(ctx, ch)
	}
	n.metrics.Subscriptions.Inc()
	return nil
}

// removeSubscriber takes s out of the hub and, when it was the channel's
// last local subscriber, unsubscribes the node in the broker. Each call is
// followed by settleOccupancy(ch, s), once s's leave is done (see
// lifecycle.go).
func (n *Node) removeSubscriber(ch string, s hub.Subscriber) {
	lk := n.chanLock(ch)
	lk.Lock()
	defer lk.Unlock()
	last, removed := n.hub.Remove(ch, s)
	if removed {
		n.metrics.Subscriptions.Dec()
		n.leaving(ch, s)
	}
	if removed && last {
		n.metrics.Channels.Dec()
		// A failed unsubscribe only costs deliveries the hub drops.
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := n.broker.Unsubscribe(ctx, ch); err != nil {
			n.log.Warn("unsubscribe in broker failed", "channel", ch, "err", err)
		}
	}
}

// HandlePublication implements broker.EventHandler.
func (n *Node) HandlePublication(ctx context.Context, ch string, pub *protocol.Publication, pos protocol.StreamPosition) {
	if ch == controlChannel {
		n.receiveControl(pub.Data)
		return
	}
	n.broadcast(ctx, &hub.Event{Channel: ch, Kind: hub.KindPublication, Pub: pub, Pos: pos})
}

// broadcast hands ev to the channel's local subscribers and counts the
// pushes once for all of them: the messages their Batch queued, and those
// messages' bytes, in each subscriber's format (a compressed frame, a
// delta, a plain text), with no encoding of its own.
//
// The broker may hold its locks: the subscribers' writes are left in the
// outbox.Batch of ctx, which its owner flushes once it holds none (see
// withBatch and DeliveryScope). Without one, the writers are woken and
// nothing is written from here.
func (n *Node) broadcast(ctx context.Context, ev *hub.Event) {
	n.metrics.Broadcasts.Inc()
	b := outbox.FromContext(ctx)
	if b == nil {
		b = outbox.GetBatch()
		defer func() {
			b.Wake()
			outbox.PutBatch(b)
		}()
	}
	msgs0, bytes0 := b.Pushed()
	n.hub.Broadcast(ev, b)
	msgs, bytes := b.Pushed()
	n.countPushes(msgs-msgs0, bytes-bytes0)
}

// countPushes counts k pushes of size bytes in all, queued for clients:
// what the admin page and the metrics show as written.
func (n *Node) countPushes(k, size int) {
	if k == 0 {
		return
	}
	n.table.pushes.Add(uint64(k))
	n.metrics.Pushes.Add(float64(k))
	n.metrics.PushBytes.Add(float64(size))
}

// HandleJoin implements broker.EventHandler.
func (n *Node) HandleJoin(ctx context.Context, ch string, info *protocol.ClientInfo) {
	n.broadcast(ctx, &hub.Event{Channel: ch, Kind: hub.KindJoin, Client: info})
}

// HandleLeave implements broker.EventHandler.
func (n *Node) HandleLeave(ctx context.Context, ch string, info *protocol.ClientInfo) {
	n.broadcast(ctx, &hub.Event{Channel: ch, Kind: hub.KindLeave, Client: info})
}

// DeliveryScope implements broker.EventHandler: the deliveries of a broker
// goroutine wait in a Batch of its own until it calls flush.
func (n *Node) DeliveryScope(ctx context.Context) (context.Context, func()) {
	b := new(outbox.Batch)
	return outbox.NewContext(ctx, b), b.Flush
}

// withBatch returns ctx carrying a Batch for the deliveries a broker call
// makes from the calling goroutine (the memory broker delivers from
// Publish), and done, which writes them: call it once the broker returned.
func withBatch(ctx context.Context) (context.Context, func()) {
	b := outbox.GetBatch()
	return outbox.NewContext(ctx, b), func() {
		b.Flush()
		outbox.PutBatch(b)
	}
}

// OutboxOptions returns the options of the outboxes a transport makes for
// the node's connections (see NewClient).
func (n *Node) OutboxOptions() outbox.Options { return n.outbox }

var _ broker.EventHandler = (*Node)(nil)

// newClientID returns a random, URL-safe connection id.
func newClientID() string { return rand.Text() }
