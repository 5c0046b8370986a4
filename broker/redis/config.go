package redis

import (
	"errors"
	"strings"
	"time"
)

// Config configures a Broker. The zero value of every field but URL means
// the documented default.
type Config struct {
	// URL locates Redis: redis://[user:password@]host:port/db, or rediss://
	// for TLS. More addresses may follow as ?addr=host:port&addr=...: the
	// nodes of a Redis Cluster, or the sentinels when master_set=NAME is
	// given too (see the package documentation). Required.
	URL string
	// Prefix namespaces every key and pub/sub channel, so that several
	// deployments can share one Redis. It must not contain '{' or '}'
	// (channel names are hash tags). Default "redcast".
	Prefix string

	// HistoryTTL is how long a publication stays in history when its
	// PublishOptions.HistoryTTL is 0. Default 24h.
	HistoryTTL time.Duration
	// StreamTTL is how long a channel's offset and epoch are kept after its
	// last publication (never less than that publication's HistoryTTL).
	// After that the next publication starts a new epoch at offset 1.
	// Default 24h.
	StreamTTL time.Duration
	// PresenceTTL bounds how long a crashed node's clients stay in
	// presence before their leaves are announced: the owner of an entry
	// refreshes it more often (see Broker.PresenceTiming and
	// broker.NewPresenceTiming). Default 60s.
	PresenceTTL time.Duration
	// PresenceKeyTTL is how long a channel's presence keys stay in Redis
	// after its last add, when no node is left to expire their entries:
	// a node that comes back within it still announces the leaves of a
	// crashed node (see docs/webhooks.md). Default PresenceTTL plus an
	// hour.
	PresenceKeyTTL time.Duration

	// Timeout bounds every Redis operation the broker makes (Publish,
	// History, presence, a SUBSCRIBE batch) and every dial, so that calls
	// fail fast with broker.ErrUnavailable while Redis is unreachable.
	// Default 1s.
	Timeout time.Duration
	// MinReconnectDelay and MaxReconnectDelay bound the exponential backoff
	// (with jitter) between attempts to reconnect the pub/sub connection.
	// Defaults 50ms and 5s.
	MinReconnectDelay time.Duration
	MaxReconnectDelay time.Duration

	// Workers is how many goroutines deliver to the EventHandler; a channel
	// always goes to the same one, so its events stay in order. Default 16.
	Workers int
	// WorkerQueue is how many pub/sub messages wait for each worker before
	// new ones are dropped (and the channel is resynchronised from
	// history). Default 4096.
	WorkerQueue int
	// SubscribeBatch is the most channels one SUBSCRIBE or UNSUBSCRIBE
	// command carries. Default 512.
	SubscribeBatch int
	// ProbeInterval is how often the broker publishes a probe to itself
	// on each pub/sub connection; one that has not come back by the next
	// round makes the broker replace that connection (see
	// Broker.ProbeFailures). Default 1s.
	ProbeInterval time.Duration
	// TransitionLogSize is about how many entries the transition log
	// keeps (see transitions.go): a reader away for longer than it takes
	// the nodes to append them misses the oldest. Default 100000.
	TransitionLogSize int
}

// Defaults, see Config.
const (
	DefaultPrefix            = "redcast"
	DefaultHistoryTTL        = 24 * time.Hour
	DefaultStreamTTL         = 24 * time.Hour
	DefaultPresenceTTL       = 60 * time.Second
	DefaultTimeout           = time.Second
	DefaultMinReconnectDelay = 50 * time.Millisecond
	DefaultMaxReconnectDelay = 5 * time.Second
	DefaultWorkers           = 16
	DefaultWorkerQueue       = 4096
	DefaultSubscribeBatch    = 512
	DefaultProbeInterval     = time.Second
	DefaultTransitionLogSize = 100000
)

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, errors.New("redis: Config.URL is required")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return c, errors.New("redis: Config.Prefix must not contain { or }")
	}
	setDefault(&c.HistoryTTL, DefaultHistoryTTL)
	setDefault(&c.StreamTTL, DefaultStreamTTL)
	setDefault(&c.PresenceTTL, DefaultPresenceTTL)
	setDefault(&c.PresenceKeyTTL, c.PresenceTTL+time.Hour)
	c.PresenceKeyTTL = max(c.PresenceKeyTTL, c.PresenceTTL)
	setDefault(&c.Timeout, DefaultTimeout)
	setDefault(&c.MinReconnectDelay, DefaultMinReconnectDelay)
	setDefault(&c.MaxReconnectDelay, DefaultMaxReconnectDelay)
	c.MaxReconnectDelay = max(c.MaxReconnectDelay, c.MinReconnectDelay)
	setDefault(&c.Workers, DefaultWorkers)
	setDefault(&c.WorkerQueue, DefaultWorkerQueue)
	setDefault(&c.SubscribeBatch, DefaultSubscribeBatch)
	setDefault(&c.ProbeInterval, DefaultProbeInterval)
	setDefault(&c.TransitionLogSize, DefaultTransitionLogSize)
	return c, nil
}

func setDefault[T time.Duration | int](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
