// Package broker defines what redcast needs from the engine that carries
// publications between nodes and keeps history and presence: the Broker and
// PresenceManager interfaces, and (in brokertest) the conformance suite every
// implementation must pass.
//
// Implementations live in subpackages: memory (embedded, one node) and redis
// (many nodes sharing one Redis).
package broker

import (
	"context"
	"errors"
	"time"

	"github.com/redcast/redcast/protocol"
)

// Errors a broker returns, possibly wrapped.
var (
	// ErrUnavailable means the broker cannot be reached right now; the
	// operation may succeed later.
	ErrUnavailable = errors.New("broker: unavailable")
	// ErrClosed means the broker was closed.
	ErrClosed = errors.New("broker: closed")
)

// EventHandler receives what a broker delivers to this node. The node
// implements it; the broker never sees client connections.
//
// For any one channel, the broker calls the handler from one goroutine at a
// time, publications in offset order, and may hold its own locks while it
// does. Handlers must not block, must not call back into the broker, and
// must not write to a connection: they queue events for local subscribers
// and return. The writes wait for whoever delivers to let go of its locks:
// the publisher (the memory broker delivers from Publish, with the
// publisher's ctx) or a goroutine of the broker's own, which takes its
// context from DeliveryScope. Delivered publications are shared and must
// not be modified.
type EventHandler interface {
	// HandlePublication delivers a publication of a channel this node is
	// subscribed to. pos is the channel's position after pub (pos.Offset ==
	// pub.Offset) and carries the epoch.
	HandlePublication(ctx context.Context, channel string, pub *protocol.Publication, pos protocol.StreamPosition)
	// HandleJoin and HandleLeave deliver presence changes of a subscribed channel.
	HandleJoin(ctx context.Context, channel string, info *protocol.ClientInfo)
	HandleLeave(ctx context.Context, channel string, info *protocol.ClientInfo)
	// DeliveryScope returns the context a goroutine of the broker's own
	// passes to the Handle methods for its deliveries, and flush, which it
	// calls whenever it delivered and holds none of its locks: the
	// handler's writes to connections are made then. The goroutine owns
	// what it gets for its life and uses it alone.
	DeliveryScope(ctx context.Context) (dctx context.Context, flush func())
}

// PublishOptions control how one publication is kept.
type PublishOptions struct {
	// HistorySize is how many publications the channel's history keeps
	// (the newest ones); 0 keeps none and clears what was kept (offsets
	// still advance).
	HistorySize int
	// HistoryTTL is how long a publication stays in history; 0 with a
	// HistorySize means the broker's default.
	HistoryTTL time.Duration
	// From is the publisher, attached to the publication when not nil.
	From *protocol.ClientInfo
}

// PublishRequest is one publication of a batch (see BatchPublisher).
type PublishRequest struct {
	Channel string
	Data    []byte
	Options PublishOptions
}

// PublishResult is the outcome of one PublishRequest: the position
// assigned, or the error.
type PublishResult struct {
	Position protocol.StreamPosition
	Err      error
}

// BatchPublisher is implemented by brokers that publish many publications
// at the cost of about one: PublishMany publishes each request as Publish
// would, in order for each channel, and returns one result per request.
// The node uses it for the publishes a client sends in one frame.
type BatchPublisher interface {
	PublishMany(ctx context.Context, reqs []PublishRequest) []PublishResult
}

// HistoryOptions select publications from a channel's history.
type HistoryOptions struct {
	// Since, when set, selects publications with an offset greater than
	// Since.Offset (whatever the epoch; callers compare epochs themselves).
	// When nil, the latest Limit publications are selected.
	Since *protocol.StreamPosition
	// Limit is the most publications returned; 0 returns none (only the
	// position), a negative Limit returns all that match.
	Limit int
}

// HistoryResult holds selected publications, oldest first, and the channel's
// current position (its latest offset and epoch).
type HistoryResult struct {
	Publications []*protocol.Publication
	Position     protocol.StreamPosition
}

// Broker carries publications to every subscribed node and keeps each
// channel's history. All methods are safe for concurrent use, and return
// ctx's error when ctx is already done.
type Broker interface {
	// Start begins delivering to h. It is called once, before any other
	// method, and returns when the broker is ready.
	Start(ctx context.Context, h EventHandler) error
	// Publish stores data in the channel's history (per opts) and delivers
	// it to every subscribed node. It returns the position assigned to the
	// publication; offsets of one channel are consecutive within an epoch.
	Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (protocol.StreamPosition, error)
	// PublishJoin and PublishLeave deliver presence changes to subscribed nodes.
	PublishJoin(ctx context.Context, channel string, info *protocol.ClientInfo) error
	PublishLeave(ctx context.Context, channel string, info *protocol.ClientInfo) error
	// Subscribe makes the broker deliver the channel's events to this node.
	// When it returns nil, every publication acknowledged afterwards is
	// delivered. The node calls it once per channel (on its first local
	// subscriber), never twice without an Unsubscribe between.
	Subscribe(ctx context.Context, channel string) error
	// Unsubscribe stops delivery of the channel to this node.
	Unsubscribe(ctx context.Context, channel string) error
	// History returns publications of a channel and its current position,
	// both from one consistent snapshot (no publication after Position is
	// included, none before it that matches is missing). A channel never
	// published to has position {0, E}, where E is the epoch its first
	// publication will get. Publications returned are shared and must not
	// be modified. Data comes back byte for byte as published.
	History(ctx context.Context, channel string, opts HistoryOptions) (HistoryResult, error)
	// Close stops delivery and releases resources. It may be called more
	// than once. Afterwards the handler is not called and methods return
	// errors wrapping ErrClosed.
	Close() error
}

// PresenceManager keeps who is subscribed to a channel, across nodes.
// All methods are safe for concurrent use.
type PresenceManager interface {
	// AddPresence records (or refreshes) a client in a channel.
	AddPresence(ctx context.Context, channel string, info *protocol.ClientInfo) error
	// RemovePresence forgets a client in a channel.
	RemovePresence(ctx context.Context, channel, clientID string) error
	// Presence returns the clients in a channel, in no particular order.
	Presence(ctx context.Context, channel string) ([]*protocol.ClientInfo, error)
}
