package auth

import (
	"slices"
	"strings"
	"time"

	"github.com/redcast/redcast/protocol"
)

// SubscribePolicy says who may subscribe to the channels of a namespace.
type SubscribePolicy string

// Subscribe policies. The zero value "" means SubscribePublic.
const (
	// SubscribePublic lets any connected client subscribe: authenticated
	// clients always, anonymous clients when Namespace.Anonymous is set.
	SubscribePublic SubscribePolicy = "public"
	// SubscribeAuthenticated lets any authenticated client subscribe.
	SubscribeAuthenticated SubscribePolicy = "authenticated"
	// SubscribeToken makes the namespace's channels private: subscribing
	// needs a subscription token for the user and the channel (see
	// Verifier.VerifySubscribe), or the channel listed in the connection
	// token's channels claim.
	SubscribeToken SubscribePolicy = "token"
)

// Namespace are the options of the channels of one namespace. The zero
// value is a namespace that authenticated clients may subscribe to, with
// nothing else on: no anonymous clients, no publishing from clients, no
// presence, no join/leave, no history.
type Namespace struct {
	// Anonymous lets anonymous clients (connected without a token)
	// subscribe, publish (when Publish), read history and presence under
	// SubscribePublic. It has no effect under the other policies.
	Anonymous bool
	// Subscribe says who may subscribe. Default SubscribePublic.
	Subscribe SubscribePolicy
	// Publish lets clients publish to the namespace's channels (when they
	// may also subscribe to them, or are subscribed). Publishing through
	// the server API is always allowed.
	Publish bool
	// PublishSubscribersOnly lets only clients subscribed to a channel
	// publish to it.
	PublishSubscribersOnly bool
	// Presence turns on the presence command.
	Presence bool
	// JoinLeave turns on join and leave pushes.
	JoinLeave bool
	// NoWebhooks leaves the namespace's channels out of redcast's own
	// webhooks (channel and presence events; "webhooks": false in the
	// configuration file), so that they cost no occupancy tracking.
	NoWebhooks bool
	// HistorySize is how many publications a channel keeps (0: none; then
	// history and recovery are not available).
	HistorySize int
	// HistoryTTL is how long a publication stays in history (0: the
	// broker's default, 24h).
	HistoryTTL time.Duration
	// AttachInfo attaches the publisher's client info (id, user and info)
	// to its publications as "from".
	AttachInfo bool
	// SubscribeProxy and PublishProxy say whether the application's
	// backend decides the subscribes and publishes of clients in the
	// namespace (instead of Subscribe and Publish; see docs/backend.md):
	// "" when the node's proxy URL does (if it has one), ProxyOff when no
	// backend does, or the URL of another backend endpoint.
	SubscribeProxy string
	PublishProxy   string
	// AllowDelta lets subscribers ask for delta publications ("delta":
	// "fossil" in subscribe): after the first, each publication carries
	// the Fossil delta from the previous one's data.
	AllowDelta bool
	// LatestOnSubscribe sends a subscriber the channel's latest
	// publication, from history, in the subscribe reply, even when it asks
	// for no history: the channel's current value (a score, a lobby).
	// Needs HistorySize.
	LatestOnSubscribe bool
}

// ProxyOff turns a proxy off for a namespace (Namespace.SubscribeProxy,
// PublishProxy).
const ProxyOff = "off"

// DefaultNamespaces returns the namespaces of a redcast without
// configuration, the development default serving the demo chat: "chat" and
// the default namespace "", both open to anonymous clients, with publishing,
// presence, join/leave, publisher info, delta publications and the last
// 100 publications for 24h.
func DefaultNamespaces() map[string]Namespace {
	open := Namespace{
		Anonymous:   true,
		Subscribe:   SubscribePublic,
		Publish:     true,
		Presence:    true,
		JoinLeave:   true,
		HistorySize: 100,
		HistoryTTL:  24 * time.Hour,
		AttachInfo:  true,
		AllowDelta:  true,
	}
	return map[string]Namespace{"chat": open, "": open}
}

// Policy decides what a client may do on a channel. Its zero value refuses
// every channel. Do not change its fields once in use; it is then safe for
// concurrent use.
//
// The checks share one rule: a client may publish to, read the history of
// and read the presence of a channel only when it is subscribed to it or
// could subscribe to it without a subscription token. A user-limited channel
// (a name with '#' followed by a comma-separated list of users, such as
// "dm:#alice,bob") may only be used by the users it lists, who need no
// subscription token; a name with more than one '#' is refused.
type Policy struct {
	// Namespaces maps a namespace ("" for channel names without ':') to its
	// options. A channel of any other namespace is refused with error 106.
	Namespaces map[string]Namespace
	// Verifier verifies subscription tokens of SubscribeToken namespaces.
	// Nil: no subscription token is accepted.
	Verifier *Verifier
	// MaxChannelLength lowers the longest channel name accepted below
	// protocol.MaxChannelLength (the default).
	MaxChannelLength int
}

// Namespace validates a channel name and returns the options of its
// namespace: error 105 for an invalid name, 106 for an unknown namespace.
func (p *Policy) Namespace(ch string) (Namespace, error) {
	if err := protocol.ValidateChannel(ch); err != nil {
		return Namespace{}, err
	}
	if p.MaxChannelLength > 0 && len(ch) > p.MaxChannelLength {
		return Namespace{}, protocol.ErrInvalidChannel.WithMessage("channel name longer than %d bytes", p.MaxChannelLength)
	}
	name := protocol.Namespace(ch)
	ns, ok := p.Namespaces[name]
	if !ok {
		return Namespace{}, protocol.ErrUnknownNamespace.WithMessage("unknown channel namespace %q", name)
	}
	return ns, nil
}

// CanSubscribe reports whether a client may subscribe to ch. creds are the
// client's credentials, nil for an anonymous client; subToken is the
// subscription token the client sent, if any (it is only looked at for a
// SubscribeToken namespace). Errors: 105, 106, 107, and ErrTokenExpired for
// an expired subscription token.
func (p *Policy) CanSubscribe(creds *Credentials, ch, subToken string) error {
	ns, err := p.Namespace(ch)
	if err != nil {
		return err
	}
	err = access(creds, ch, ns, false)
	if err == nil || ns.Subscribe != SubscribeToken || strings.Contains(ch, "#") {
		return err
	}
	switch {
	case subToken == "":
		return denied("channel %q needs a subscription token", ch)
	case p.Verifier == nil:
		return denied("subscription tokens are not configured")
	}
	return p.Verifier.VerifySubscribe(subToken, user(creds), ch)
}

// CanPublish reports whether a client (creds nil when anonymous) may
// publish to ch; subscribed says whether it is subscribed to ch. Errors:
// 105, 106, 107.
func (p *Policy) CanPublish(creds *Credentials, ch string, subscribed bool) error {
	ns, err := p.Namespace(ch)
	if err != nil {
		return err
	}
	switch {
	case !ns.Publish:
		return denied("clients may not publish to channel %q", ch)
	case ns.PublishSubscribersOnly && !subscribed:
		return denied("subscribe to channel %q to publish to it", ch)
	}
	return access(creds, ch, ns, subscribed)
}

// CanHistory reports whether a client may read the history of ch. Errors:
// 105, 106, 107, and 111 when the namespace keeps no history.
func (p *Policy) CanHistory(creds *Credentials, ch string, subscribed bool) error {
	ns, err := p.Namespace(ch)
	if err != nil {
		return err
	}
	if ns.HistorySize <= 0 {
		return protocol.ErrNotAvailable.WithMessage("history is off for channel %q", ch)
	}
	return access(creds, ch, ns, subscribed)
}

// CanPresence reports whether a client may read the presence of ch. Errors:
// 105, 106, 107, and 111 when presence is off for the namespace.
func (p *Policy) CanPresence(creds *Credentials, ch string, subscribed bool) error {
	ns, err := p.Namespace(ch)
	if err != nil {
		return err
	}
	if !ns.Presence {
		return protocol.ErrNotAvailable.WithMessage("presence is off for channel %q", ch)
	}
	return access(creds, ch, ns, subscribed)
}

// access applies the rule shared by every check: user-limited channels to
// their users; otherwise a subscribed client, a channel the token lists, or
// the namespace's subscribe policy.
func access(creds *Credentials, ch string, ns Namespace, subscribed bool) error {
	u := user(creds)
	if users, ok := limitedUsers(ch); ok {
		if u == "" || !slices.Contains(users, u) {
			return denied("channel %q is limited to the users it names", ch)
		}
		return nil
	}
	if subscribed || (creds != nil && slices.Contains(creds.Channels, ch)) {
		return nil
	}
	switch ns.Subscribe {
	case "", SubscribePublic:
		if u == "" && !ns.Anonymous {
			return denied("channel %q is not open to anonymous clients", ch)
		}
		return nil
	case SubscribeAuthenticated:
		if u == "" {
			return denied("channel %q is not open to anonymous clients", ch)
		}
		return nil
	case SubscribeToken:
		return denied("channel %q needs a subscription token", ch)
	}
	return denied("namespace of channel %q has an unknown subscribe policy", ch)
}

// limitedUsers returns the users of a user-limited channel: ok is true when
// ch has a '#'. A name with several '#' is limited to nobody.
func limitedUsers(ch string) (users []string, ok bool) {
	_, list, ok := strings.Cut(ch, "#")
	if !ok || strings.Contains(list, "#") {
		return nil, ok
	}
	return strings.Split(list, ","), true
}

func user(creds *Credentials) string {
	if creds == nil {
		return ""
	}
	return creds.User
}
