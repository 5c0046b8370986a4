package pusher

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/webhook"
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
	// PresenceNamespace is the namespace of the app's presence- channels,
	// which keeps presence (the others do not pay for it). Default
	// DefaultPresenceNamespace.
	PresenceNamespace string

	// The app's limits. Zero means the Handler's (Config's) value.
	//
	// MaxConnections bounds the app's connections in the cluster: one
	// more is refused with error 4004. A node counts its own at once and
	// the others' as they announced them (every 2 s), so connections
	// made on several nodes at the same moment may pass it by a little.
	// Zero: no bound of the app's own (the node's --max-connections still
	// applies).
	MaxConnections int
	// ClientEventRate is how many client events per second a connection
	// may send (a negative rate: no limit); the burst is Config's
	// ClientEventBurst.
	ClientEventRate float64
	// MaxEventSize is the largest event data, in bytes: of a client event
	// and of an event of the HTTP API.
	MaxEventSize int
	// MaxPresenceMembers is how many users a presence channel holds.
	MaxPresenceMembers int

	// WebhookURL receives the app's webhooks (see webhook.go); empty:
	// none.
	WebhookURL string
}

// Defaults of App.Namespace and App.PresenceNamespace.
const (
	DefaultNamespace         = "pusher"
	DefaultPresenceNamespace = "pusher-presence"
)

// userPrefix starts the redcast user of every Pusher user: an app's user u
// is redcast's "pusher:{id}:u" (see scopedUser).
const userPrefix = "pusher:"

// scopedUser returns the redcast user of the app's Pusher user: users are
// the app's, so that user 42 of one app is neither user 42 of another nor a
// redcast client's user 42. App ids hold no ':', so no two apps' users
// share a redcast user.
func (a *App) scopedUser(user string) string { return userPrefix + a.ID + ":" + user }

// pusherUser returns the Pusher user of a redcast user, false when it is
// not one of the app's (another app's, or a redcast client's).
func (a *App) pusherUser(user string) (string, bool) {
	rest, ok := strings.CutPrefix(user, userPrefix)
	if !ok {
		return "", false
	}
	return strings.CutPrefix(rest, a.ID+":")
}

// validAppID reports whether id is 1 to 64 bytes of letters, digits and
// _ - . (Pusher's ids are numbers): no ':', which scopedUser relies on.
func validAppID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// channel returns the redcast channel of the app's Pusher channel name.
func (a *App) channel(name string) string {
	ns := a.Namespace
	if strings.HasPrefix(name, presencePrefix) {
		ns = a.PresenceNamespace
	}
	return ns + string(protocol.NamespaceSeparator) + name
}

// Config configures a Handler. The zero value means the defaults, with no
// app: every connection is refused as Pusher refuses an unknown app key.
// Its limits are those of the apps that do not set their own (App).
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
	// MaxPresenceMembers is how many users a presence channel holds: a
	// subscribe of one more is refused (pusher:subscription_error, status
	// 403). Default 100, Pusher's.
	MaxPresenceMembers int
	// Logger receives the handler's logs; nil discards them.
	Logger *slog.Logger
	// Webhooks sends the webhooks of the apps with a WebhookURL (the
	// server's webhook machine); its owner closes it.
	Webhooks *webhook.Sender
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
	if c.MaxPresenceMembers <= 0 {
		c.MaxPresenceMembers = 100
	}
	if c.ClientEventBurst <= 0 {
		c.ClientEventBurst = 10
	}
	c.Apps = append([]App(nil), c.Apps...)
	for i := range c.Apps {
		a := &c.Apps[i]
		if a.Namespace == "" {
			a.Namespace = DefaultNamespace
		}
		if a.PresenceNamespace == "" {
			a.PresenceNamespace = DefaultPresenceNamespace
		}
		if a.ClientEventRate == 0 {
			a.ClientEventRate = c.ClientEventRate
		}
		if a.MaxEventSize == 0 {
			a.MaxEventSize = c.MaxEventSize
		}
		if a.MaxPresenceMembers == 0 {
			a.MaxPresenceMembers = c.MaxPresenceMembers
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
		case !validAppID(a.ID):
			return fmt.Errorf("%w: app id %q must be 1 to 64 bytes of letters, digits, _ - and .", ErrConfig, a.ID)
		case a.MaxConnections < 0 || a.MaxEventSize < 0 || a.MaxPresenceMembers < 0:
			return fmt.Errorf("%w: app %q: a limit is negative", ErrConfig, a.ID)
		case keys[a.Key] || ids[a.ID]:
			return fmt.Errorf("%w: app %q shares its key or id with another app", ErrConfig, a.ID)
		}
		for _, ns := range []string{a.Namespace, a.PresenceNamespace} {
			switch _, ok := namespaces[ns]; {
			case nss[ns]:
				return fmt.Errorf("%w: app %q: namespace %q is used twice", ErrConfig, a.ID, ns)
			case protocol.ValidateChannel(ns) != nil || protocol.Namespace(ns+":") != ns:
				return fmt.Errorf("%w: app %q: invalid namespace %q", ErrConfig, a.ID, ns)
			case !ok:
				return fmt.Errorf("%w: app %q: namespace %q is not configured on the node", ErrConfig, a.ID, ns)
			case ns == a.PresenceNamespace && !namespaces[ns].Presence:
				return fmt.Errorf("%w: app %q: namespace %q keeps no presence", ErrConfig, a.ID, ns)
			}
			nss[ns] = true
		}
		keys[a.Key], ids[a.ID] = true, true
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

// PresenceChannelNamespace is the namespace an app's presence channels get
// when the configuration has none of that name: ChannelNamespace's access,
// with presence, and the last presenceCacheDepth publications of each
// channel kept for 30 minutes, what presence-cache- channels send on
// subscribe (their last event that is not a member event).
func PresenceChannelNamespace() auth.Namespace {
	return auth.Namespace{Subscribe: auth.SubscribeToken, Presence: true, HistorySize: presenceCacheDepth, HistoryTTL: 30 * time.Minute}
}

// presenceCacheDepth is how many of a presence-cache- channel's last
// publications a subscribe reads to find its last event: member events are
// publications too.
const presenceCacheDepth = 10

// WithNamespaces returns namespaces (nil: auth.DefaultNamespaces()) with
// the namespaces of each of cfg's apps added as ChannelNamespace and
// PresenceChannelNamespace where they are missing. namespaces is not
// modified.
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
		if _, ok := out[a.PresenceNamespace]; !ok {
			out[a.PresenceNamespace] = PresenceChannelNamespace()
		}
	}
	return out
}
