package loadgen

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"time"
)

// Scenario names what Run measures.
type Scenario string

// The scenarios; see the package documentation.
const (
	Fanout Scenario = "fanout"
	Idle   Scenario = "idle"
	Storm  Scenario = "storm"
)

// Sentinel errors. Run wraps them with details.
var (
	// ErrOptions reports options that cannot work.
	ErrOptions = errors.New("loadgen: invalid options")
	// ErrNoConnection reports a run in which no subscriber, or no
	// publisher, could connect.
	ErrNoConnection = errors.New("loadgen: no connection")
)

// Options configure a Run. The zero value of every field means the documented
// default.
type Options struct {
	// URL is the server's base URL, ws://HOST:PORT or wss://HOST:PORT.
	// Publishers and full-protocol subscribers use URL/connection/websocket.
	// Default ws://127.0.0.1:8080.
	URL string
	// PlainRoom, when set, makes the subscribers plain-mode clients of the
	// room PlainRoom (one channel) or the rooms PlainRoom-0 …
	// PlainRoom-(Channels-1), at URL/rooms/ROOM. Publishers still use the
	// full protocol (plain mode has no acknowledgements) and publish to the
	// rooms' channels chat:ROOM.
	PlainRoom string
	// PusherKey, when set, makes the subscribers Pusher protocol clients
	// of the app with this key, at URL/app/PusherKey, subscribed to the
	// Pusher channels PREFIX-0 … (ChannelPrefix); publishers use the full
	// protocol and publish to their redcast channels PusherNamespace:NAME.
	// It excludes PlainRoom.
	PusherKey string
	// PusherNamespace is the namespace of the Pusher app's channels.
	// Default "pusher" (the app of the --pusher-* flags).
	PusherNamespace string
	// ChannelPrefix names the channels of full-protocol subscribers:
	// PREFIX-0 … PREFIX-(Channels-1). Default "bench" (the default
	// namespace, which a server without configuration serves).
	ChannelPrefix string
	// Scenario is what to run. Default Fanout.
	Scenario Scenario
	// Subscribers is the number of subscriber connections, spread
	// round-robin over the channels. Default 1000.
	Subscribers int
	// Channels is the number of channels. Default 1.
	Channels int
	// Publishers is the number of publisher connections (Fanout, Storm).
	// Each cycles over the channels. Default 1.
	Publishers int
	// Rate is the total publications per second of all publishers; 0 means
	// as fast as the in-flight window allows. In the storm scenario it is
	// the rate of the probes that find out whether every subscriber
	// receives (0 there means 100/s): they cycle over the channels, so
	// with many channels raise it, with enough publishers. Mind the
	// server's per-connection publish limit (default 1000/s): use more
	// publishers, or lift it.
	Rate float64
	// MessageSize is the size in bytes of each publication's data (the JSON
	// value {"text": …}); plain clients receive 11 bytes less. At least the
	// stamp fits, whatever the setting. Default 64.
	MessageSize int
	// Duration is how long Fanout measures and Idle holds its connections.
	// Default 10s.
	Duration time.Duration
	// Warmup is how long Fanout publishes before it measures, once every
	// subscriber receives. Default 1s; negative means none.
	Warmup time.Duration
	// InFlight is how many publishes one publisher may have sent without a
	// reply. Default 100.
	InFlight int
	// SourceAddrs are local addresses that connections are spread over
	// (round-robin), so that more connections than one address has
	// ephemeral ports (about 28k on Linux) can be opened: for example
	// 127.0.0.1 … 127.0.0.8. Default: the system chooses.
	SourceAddrs []netip.Addr
	// ConnectConcurrency is how many connections are being opened at once.
	// Default 64; in the storm scenario all subscribers.
	ConnectConcurrency int
	// ServerPID, when positive, names the server process (on this machine)
	// whose RSS and CPU time the report includes, from /proc.
	ServerPID int
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Compression offers permessage-deflate on every connection (the
	// server compresses what it sends when it accepts; the load generator
	// sends uncompressed).
	Compression bool
}

// Timeouts that bound the phases of a run.
const (
	// connectTimeout bounds one connection's dial, upgrade and subscribe.
	connectTimeout = 30 * time.Second
	// readyTimeout bounds the wait for every subscriber to receive.
	readyTimeout = 30 * time.Second
	// ackTimeout bounds the wait for replies to publishes in flight.
	ackTimeout = 10 * time.Second
	// drainQuiet ends the wait for deliveries once nothing arrived for it;
	// drainTimeout ends it anyway.
	drainQuiet   = time.Second
	drainTimeout = 30 * time.Second
	// writeTimeout bounds one write to a connection.
	writeTimeout = 10 * time.Second
)

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.URL == "" {
		o.URL = "ws://127.0.0.1:8080"
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = "bench"
	}
	if o.PusherNamespace == "" {
		o.PusherNamespace = "pusher"
	}
	if o.Scenario == "" {
		o.Scenario = Fanout
	}
	def(&o.Subscribers, 1000)
	def(&o.Channels, 1)
	def(&o.Publishers, 1)
	def(&o.MessageSize, 64)
	def(&o.InFlight, 100)
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	switch {
	case o.Warmup == 0:
		o.Warmup = time.Second
	case o.Warmup < 0:
		o.Warmup = 0
	}
	switch o.Scenario {
	case Storm:
		if o.Rate == 0 {
			o.Rate = 100
		}
		if o.ConnectConcurrency <= 0 {
			o.ConnectConcurrency = o.Subscribers
		}
	case Idle:
		o.Publishers = 0
	}
	def(&o.ConnectConcurrency, 64)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch o.Scenario {
	case Fanout, Idle, Storm:
	default:
		return fmt.Errorf("%w: unknown scenario %q (fanout, idle, storm)", ErrOptions, o.Scenario)
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return fmt.Errorf("%w: URL: %v", ErrOptions, err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("%w: URL %q: want ws://HOST:PORT or wss://HOST:PORT", ErrOptions, o.URL)
	}
	if o.PusherKey != "" && o.PlainRoom != "" {
		return fmt.Errorf("%w: a Pusher key and a plain room exclude each other", ErrOptions)
	}
	if o.Rate < 0 {
		return fmt.Errorf("%w: negative rate", ErrOptions)
	}
	if o.MessageSize > 1<<20 {
		return fmt.Errorf("%w: message size %d is above 1 MiB", ErrOptions, o.MessageSize)
	}
	for _, a := range o.SourceAddrs {
		if !a.IsValid() {
			return fmt.Errorf("%w: invalid source address", ErrOptions)
		}
	}
	return nil
}
