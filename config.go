package redcast

import (
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// DefaultFlushWindow is the default of Config.FlushWindow.
const DefaultFlushWindow = 4 * time.Millisecond

// Config configures a Node. The zero value of every field means the
// documented default, so Config{} is a working single-node setup.
type Config struct {
	// MaxFrameSize is the largest WebSocket frame a client may send, in
	// bytes. Default 64 KiB.
	MaxFrameSize int
	// MaxDataSize is the largest publication data a client may send, in
	// bytes. Default 16 KiB.
	MaxDataSize int
	// MaxChannels is how many channels one connection may subscribe to.
	// Default 128.
	MaxChannels int
	// MaxChannelLength is the longest channel name accepted, in bytes, at
	// most protocol.MaxChannelLength. Default 255.
	MaxChannelLength int
	// MaxConnections is how many connections the node accepts at once;
	// more are refused. Default 100000.
	MaxConnections int
	// PublishRate and PublishBurst bound how fast one connection may
	// publish (a token bucket: PublishRate per second on average, bursts
	// of PublishBurst). A publish over the limit gets error 116. A negative
	// rate means no limit. Defaults 1000/s and 2000.
	PublishRate  float64
	PublishBurst int
	// SubscribeRate and SubscribeBurst bound subscribe commands per
	// connection the same way. Defaults 50/s and 200 (a client resubscribing
	// its channels after a reconnect fits in one burst); negative: no limit.
	SubscribeRate  float64
	SubscribeBurst int
	// MaxRefusals is how many commands in a row one connection may have
	// refused for exceeding a rate before it is disconnected with 3503.
	// Default 100.
	MaxRefusals int
	// QueueMaxMessages and QueueMaxBytes bound each connection's send
	// queue; a connection whose queue overflows is disconnected as a slow
	// consumer. Defaults 1024 messages and 1 MiB.
	QueueMaxMessages int
	QueueMaxBytes    int
	// PingInterval is how often the server pings an idle connection.
	// Default 25s.
	PingInterval time.Duration
	// PongTimeout is how long past PingInterval the server waits to hear
	// from a client before closing it. Default 10s.
	PongTimeout time.Duration
	// ConnectTimeout is how long a new connection has to send connect.
	// Default 10s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one socket write. Default 10s.
	WriteTimeout time.Duration
	// FlushWindow is how long the writer of a connection that receives a
	// steady stream gathers messages between two writes: the first message
	// after a quiet spell and the replies to a client's commands go out at
	// once, later ones wait at most this long. It trades a little latency
	// for far fewer system calls under load. While the process is
	// saturated (its CPU time above 85% of GOMAXPROCS) windows stretch, by
	// up to 24ms, until it keeps up again (see package outbox). Default
	// DefaultFlushWindow; negative: write as soon as possible.
	FlushWindow time.Duration
	// Namespaces maps a namespace ("" for channels without one) to its
	// options: who may subscribe and publish, history, presence. Nil means
	// auth.DefaultNamespaces() (the open "chat" and default namespaces). A
	// channel whose namespace is not in the map is refused with error 106.
	Namespaces map[string]auth.Namespace
	// Verifier checks connection, refresh and subscription tokens. Nil:
	// the node accepts no tokens, and a connect with one gets error 114.
	Verifier *auth.Verifier
	// RequireToken refuses anonymous clients (error 114 on connect; plain
	// mode, which is always anonymous, answers HTTP 401). Default false:
	// anonymous clients may connect, which the demo chat needs.
	RequireToken bool
	// ReconnectSpread spreads the reconnects of a node's clients when it
	// shuts down: each is told (disconnect 3001) to wait a random delay of
	// up to ReconnectSpread first, so that they do not all arrive at the
	// other nodes at once. Default 3s; negative: no delay.
	ReconnectSpread time.Duration
	// NodeName names the node in Nodes and the admin page. Default: the
	// host name.
	NodeName string
	// NodeInfoInterval is how often the node announces its counts to the
	// other nodes (see Nodes). Default 2s.
	NodeInfoInterval time.Duration
	// RefreshGrace is how long a client whose token expired has to send a
	// fresh one (refresh) before it is disconnected with 3006. Default 10s.
	RefreshGrace time.Duration
	// IdempotencyWindow is how long after a publish with an idempotency
	// key a publish with the same key to the same channel returns the
	// first one's position and publishes nothing. Default
	// broker.DefaultIdempotencyTTL (5 minutes).
	IdempotencyWindow time.Duration
	// Proxy says what the node asks the application's backend (see
	// ProxyConfig and docs/backend.md). Zero: nothing.
	Proxy ProxyConfig
}

// MaxHistoryLimit caps how many publications one history or subscribe reply
// carries.
const MaxHistoryLimit = 1000

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxFrameSize, 64<<10)
	def(&c.MaxDataSize, 16<<10)
	def(&c.MaxChannels, 128)
	def(&c.MaxChannelLength, protocol.MaxChannelLength)
	c.MaxChannelLength = min(c.MaxChannelLength, protocol.MaxChannelLength)
	def(&c.MaxConnections, 100000)
	if c.PublishRate == 0 {
		c.PublishRate = 1000
	}
	def(&c.PublishBurst, 2000)
	if c.SubscribeRate == 0 {
		c.SubscribeRate = 50
	}
	def(&c.SubscribeBurst, 200)
	def(&c.MaxRefusals, 100)
	if c.FlushWindow == 0 {
		c.FlushWindow = DefaultFlushWindow
	}
	def(&c.QueueMaxMessages, 1024)
	def(&c.QueueMaxBytes, 1<<20)
	defDur(&c.PingInterval, 25*time.Second)
	defDur(&c.PongTimeout, 10*time.Second)
	defDur(&c.ConnectTimeout, 10*time.Second)
	defDur(&c.WriteTimeout, 10*time.Second)
	defDur(&c.RefreshGrace, 10*time.Second)
	defDur(&c.NodeInfoInterval, 2*time.Second)
	defDur(&c.IdempotencyWindow, broker.DefaultIdempotencyTTL)
	if c.ReconnectSpread == 0 {
		c.ReconnectSpread = 3 * time.Second
	}
	if c.Namespaces == nil {
		c.Namespaces = auth.DefaultNamespaces()
	}
	return c
}
