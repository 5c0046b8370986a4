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
	// Publisher is the publishing connection's id, kept with the
	// publication (protocol.Publication.Publisher) whether or not From is
	// attached; empty for the server API.
	Publisher string
	// IdempotencyKey, when not empty, makes the publish idempotent: if a
	// publication with the same key was made to the channel within
	// IdempotencyTTL, Publish publishes nothing and returns that
	// publication's position. The check and the publish are one atomic
	// step: however many publishers race with one key, exactly one
	// publication is made.
	IdempotencyKey string
	// IdempotencyTTL is how long a key is remembered after its
	// publication; 0 means DefaultIdempotencyTTL. Ignored without a key.
	IdempotencyTTL time.Duration
}

// DefaultIdempotencyTTL is how long a broker remembers an idempotency key
// when PublishOptions.IdempotencyTTL is 0.
const DefaultIdempotencyTTL = 5 * time.Minute

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
//
// Add and remove report what they changed, decided atomically with the
// change: across every node sharing the manager, each client entering a
// channel is reported once (by the AddPresence that added it) and each
// client leaving once (by the RemovePresence or ExpirePresence that removed
// it). Nodes announce joins and leaves from these reports, so that every
// subscriber's view of a channel converges on Presence.
type PresenceManager interface {
	// AddPresence records (or refreshes) a client in a channel. It reports
	// the client as entering when it was not there: its first add, or an
	// add after its entry expired and was removed. A client's user
	// (info.User) must not change between adds.
	AddPresence(ctx context.Context, channel string, info *protocol.ClientInfo) (PresenceChange, error)
	// RemovePresence forgets a client in a channel. It reports the client
	// as leaving, with the info it was recorded with, when it was there.
	RemovePresence(ctx context.Context, channel, clientID string) (PresenceChange, error)
	// Presence returns the clients in a channel, in no particular order.
	// Expired entries are not returned, even before they are removed.
	Presence(ctx context.Context, channel string) ([]*protocol.ClientInfo, error)
}

// PresenceChange is what one call changed in a channel's presence.
type PresenceChange struct {
	// Client is the client that entered or left the channel; nil when the
	// call changed nothing (the client was there already, or was not).
	Client *protocol.ClientInfo
	// User reports that the change is also one of its user: Client is the
	// first client of its user (Client.User) to enter the channel, or the
	// last to leave it. A client without a user is a user of its own.
	// This is what Pusher-style member_added and member_removed follow.
	User bool
	// Seq numbers the changes of users of the channel (those with User
	// set) in the order the presence manager made them, 1, 2, 3...,
	// whichever nodes made them, when it is shared by nodes (Redis): a
	// listener that hears them from several nodes can put them back in
	// order. 0 when the presence manager does not number them (memory:
	// one node, which hears them in order), or when User is false. The
	// numbering may begin again at 1 once the channel's presence has
	// been empty for long.
	Seq uint64
}

// LogEntry is one entry of a log a broker keeps for the nodes: its ID,
// which orders the log, and its data.
type LogEntry struct {
	ID   string
	Data []byte
}

// PresenceExpirer is implemented by presence managers whose entries expire
// unless their owner refreshes them, so that the clients of a node that
// died leave presence. A node that serves channels with presence calls
// AddPresence for each of its clients every PresenceTiming().Refresh, and
// ExpirePresence for each of those channels every PresenceTiming().Expire,
// announcing a leave for each client returned: the clients of a crashed
// node then leave, once each, within the TTL.
type PresenceExpirer interface {
	PresenceManager
	// PresenceTiming returns the intervals the node keeps; a zero timing
	// means entries never expire.
	PresenceTiming() PresenceTiming
	// ExpirePresence removes the channel's expired entries and returns
	// them, oldest first. Whichever nodes call it at the same time, each
	// expired entry is returned by exactly one call.
	ExpirePresence(ctx context.Context, channel string) ([]PresenceChange, error)
}

// PresenceTiming says how presence entries that expire are kept alive and
// removed. NewPresenceTiming derives it from a TTL.
type PresenceTiming struct {
	// TTL bounds how long a client whose owner stopped refreshing it stays
	// in presence, and how long until its leave is announced.
	TTL time.Duration
	// Refresh is how often the owner re-adds each of its entries.
	Refresh time.Duration
	// Expire is how often a node calls ExpirePresence for the channels it
	// serves.
	Expire time.Duration
	// Lifetime is how long after its last add an entry counts as expired:
	// TTL less Expire, so that an entry's expiry is noticed within TTL of
	// its last refresh. It lets two refreshes in a row fail before a live
	// client is taken for gone.
	Lifetime time.Duration
}

// NewPresenceTiming returns the timing of a TTL: refresh every quarter of
// it, expire every sixth. An entry lives 5/6 of the TTL after its last
// refresh, so the third refresh after it (3/4) still comes in time: two in
// a row may fail.
func NewPresenceTiming(ttl time.Duration) PresenceTiming {
	if ttl <= 0 {
		return PresenceTiming{}
	}
	return PresenceTiming{TTL: ttl, Refresh: ttl / 4, Expire: ttl / 6, Lifetime: ttl - ttl/6}
}
