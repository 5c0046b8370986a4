package pusher

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/protocol"
)

// App is one Pusher application: its clients connect with Key, sign with
// Secret, and the HTTP API names it by ID.
type App struct {
	ID     string
	Key    string
	Secret string
	// Namespace is the redcast namespace of the app's channels: Pusher's
	// channel "c" is redcast's "Namespace:c". Default DefaultNamespace.
	// Apps must not share one.
	Namespace string
}

// DefaultNamespace is the default of App.Namespace.
const DefaultNamespace = "pusher"

// Config configures a Handler. The zero value means the defaults, with no
// app: every connection is refused as Pusher refuses an unknown app key.
type Config struct {
	Apps []App
	// MaxEventSize is the largest event data a client may send, in bytes.
	// Default 10 KiB, Pusher's.
	MaxEventSize int
	// ActivityTimeout is how long a client waits, hearing nothing from the
	// server, before it sends pusher:ping (sent in
	// pusher:connection_established). Default 120s, Pusher's.
	ActivityTimeout time.Duration
	// ClientEventRate and ClientEventBurst bound the client events of one
	// connection (a token bucket); an event over the limit is refused
	// with error 4301. Defaults 10/s and 10, Pusher's; a negative rate
	// means no limit.
	ClientEventRate  float64
	ClientEventBurst int
}

func (c Config) withDefaults() Config {
	if c.MaxEventSize <= 0 {
		c.MaxEventSize = 10 << 10
	}
	if c.ActivityTimeout <= 0 {
		c.ActivityTimeout = 120 * time.Second
	}
	if c.ClientEventRate == 0 {
		c.ClientEventRate = 10
	}
	if c.ClientEventBurst <= 0 {
		c.ClientEventBurst = 10
	}
	c.Apps = append([]App(nil), c.Apps...)
	for i := range c.Apps {
		if c.Apps[i].Namespace == "" {
			c.Apps[i].Namespace = DefaultNamespace
		}
	}
	return c
}

// ErrConfig is wrapped by the errors of an invalid Config.
var ErrConfig = errors.New("pusher: invalid configuration")

// validate checks the apps: every field set, keys, ids and namespaces
// unique, and each namespace configured on the node.
func (c Config) validate(namespaces map[string]auth.Namespace) error {
	keys, ids, nss := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, a := range c.Apps {
		switch {
		case a.ID == "" || a.Key == "" || a.Secret == "":
			return fmt.Errorf("%w: app %q needs an id, a key and a secret", ErrConfig, a.ID)
		case keys[a.Key] || ids[a.ID] || nss[a.Namespace]:
			return fmt.Errorf("%w: app %q shares its key, id or namespace with another app", ErrConfig, a.ID)
		case protocol.ValidateChannel(a.Namespace) != nil || protocol.Namespace(a.Namespace+":") != a.Namespace:
			return fmt.Errorf("%w: app %q: invalid namespace %q", ErrConfig, a.ID, a.Namespace)
		}
		if _, ok := namespaces[a.Namespace]; !ok {
			return fmt.Errorf("%w: app %q: namespace %q is not configured on the node", ErrConfig, a.ID, a.Namespace)
		}
		keys[a.Key], ids[a.ID], nss[a.Namespace] = true, true, true
	}
	return nil
}

// ChannelNamespace is the namespace an app's channels get when the
// configuration has none of that name (see WithNamespaces): redcast's own
// clients may subscribe with a subscription token only, and never publish
// (the Pusher side decides who may); each channel keeps its last event for
// 30 minutes, what Pusher's cache channels send on subscribe.
func ChannelNamespace() auth.Namespace {
	return auth.Namespace{Subscribe: auth.SubscribeToken, HistorySize: 1, HistoryTTL: 30 * time.Minute}
}

// WithNamespaces returns namespaces (nil: auth.DefaultNamespaces()) with
// the namespace of each of cfg's apps added as ChannelNamespace where it is
// missing. namespaces is not modified.
func WithNamespaces(namespaces map[string]auth.Namespace, cfg Config) map[string]auth.Namespace {
	cfg = cfg.withDefaults()
	if len(cfg.Apps) == 0 {
		return namespaces
	}
	if namespaces == nil {
		namespaces = auth.DefaultNamespaces()
	}
	out := maps.Clone(namespaces)
	for _, a := range cfg.Apps {
		if _, ok := out[a.Namespace]; !ok {
			out[a.Namespace] = ChannelNamespace()
		}
	}
	return out
}
