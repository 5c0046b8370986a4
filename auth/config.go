package auth

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/redcast/redcast/protocol"
)

// FileConfig is redcast's configuration file, as LoadConfig reads it. The
// keys and their defaults are documented in docs/configuration.md.
type FileConfig struct {
	// Auth configures token verification ("auth"). Auth.Enabled() is false
	// when the file configures no secret and no key.
	Auth Config
	// AllowAnonymous lets clients connect without a token
	// ("allow_anonymous", default true: the development default that serves
	// the demo chat).
	AllowAnonymous bool
	// AllowedOrigins are the origins ("https://example.com", or "*" for
	// any) that may open WebSockets besides the server's own
	// ("allowed_origins").
	AllowedOrigins []string
	// Namespaces are the channel namespaces ("namespaces"); DefaultNamespaces
	// when the key is absent.
	Namespaces map[string]Namespace
	// Limits are the per-connection and per-node limits ("limits"); zero
	// fields are not set by the file.
	Limits Limits
	// PusherApps are the Pusher apps ("pusher_apps"; see docs/pusher.md).
	PusherApps []PusherApp
}

// PusherApp is one Pusher app of the file: an id, a key and a secret, all
// required, and optionally the namespaces of its channels (the server
// checks them, and that no two apps share a key, an id or a namespace) and
// its limits (zero: the server's; see docs/pusher.md).
type PusherApp struct {
	ID                 string  `json:"id"`
	Key                string  `json:"key"`
	Secret             string  `json:"secret"`
	Namespace          string  `json:"namespace"`
	PresenceNamespace  string  `json:"presence_namespace"`
	MaxConnections     int     `json:"max_connections"`
	ClientEventRate    float64 `json:"client_event_rate"`
	MaxEventSize       int     `json:"max_event_size"`
	MaxPresenceMembers int     `json:"max_presence_members"`
	// WebhookURL receives the app's webhooks (optional).
	WebhookURL string `json:"webhook_url"`
}

// Limits bound what clients may do. They mirror the node's limits
// (redcast.Config) and its flags; a zero field is not set by the file, so
// the flag or the node's default applies (see docs/configuration.md).
type Limits struct {
	// MaxFrameSize is the largest WebSocket message a client may send, in
	// bytes.
	MaxFrameSize int `json:"max_frame_size"`
	// MaxDataSize is the largest publication data a client may send, in
	// bytes; at most MaxFrameSize.
	MaxDataSize int `json:"max_data_size"`
	// MaxChannels is how many channels one connection may subscribe to.
	MaxChannels int `json:"max_channels"`
	// MaxChannelLength is the longest channel name, in bytes; at most
	// protocol.MaxChannelLength.
	MaxChannelLength int `json:"max_channel_length"`
	// MaxConnections is how many connections one node accepts at once.
	MaxConnections int `json:"max_connections"`
	// PublishRate and PublishBurst are the token bucket of publishes of one
	// connection: PublishRate per second on average, PublishBurst at once.
	// A negative rate means no limit.
	PublishRate  float64 `json:"publish_rate"`
	PublishBurst int     `json:"publish_burst"`
	// SubscribeRate and SubscribeBurst are the token bucket of subscribes
	// of one connection. A negative rate means no limit.
	SubscribeRate  float64 `json:"subscribe_rate"`
	SubscribeBurst int     `json:"subscribe_burst"`
	// MaxRefusals is how many commands in a row a connection may have
	// refused for exceeding a rate before it is disconnected.
	MaxRefusals int `json:"max_refusals"`
}

// defaultMaxFrameSize is the node's default frame limit, against which a
// configured max_data_size is checked when max_frame_size is not set.
const defaultMaxFrameSize = 64 << 10

// The JSON shapes of the file. Durations are strings ("24h") parsed after
// decoding, so that an error names its key.
type (
	fileJSON struct {
		Auth           json.RawMessage            `json:"auth"`
		AllowAnonymous *bool                      `json:"allow_anonymous"`
		AllowedOrigins []string                   `json:"allowed_origins"`
		Namespaces     map[string]json.RawMessage `json:"namespaces"`
		Limits         json.RawMessage            `json:"limits"`
		PusherApps     []json.RawMessage          `json:"pusher_apps"`
	}
	authJSON struct {
		Secret        string   `json:"secret"`
		PublicKeyFile string   `json:"public_key_file"`
		Algorithms    []string `json:"algorithms"`
		Audience      string   `json:"audience"`
		Issuer        string   `json:"issuer"`
		Leeway        string   `json:"leeway"`
		RequireExpiry bool     `json:"require_exp"`
	}
	namespaceJSON struct {
		Anonymous              bool   `json:"anonymous"`
		Subscribe              string `json:"subscribe"`
		Publish                bool   `json:"publish"`
		PublishSubscribersOnly bool   `json:"publish_subscribers_only"`
		Presence               bool   `json:"presence"`
		JoinLeave              bool   `json:"join_leave"`
		HistorySize            int    `json:"history_size"`
		HistoryTTL             string `json:"history_ttl"`
		AttachInfo             bool   `json:"attach_info"`
		SubscribeProxy         string `json:"subscribe_proxy"`
		PublishProxy           string `json:"publish_proxy"`
		AllowDelta             bool   `json:"allow_delta"`
		LatestOnSubscribe      bool   `json:"latest_on_subscribe"`
		Webhooks               *bool  `json:"webhooks"`
	}
)

// LoadConfig reads and checks a JSON configuration file. Every error names
// the file and the key at fault, for example
//
//	redcast.json: namespaces.chat.history_ttl: time: invalid duration "1 day"
//
// Unknown keys are errors (spelled exactly: keys are case-sensitive). A
// relative auth.public_key_file is relative to the file's directory; the key
// file is read and checked too.
func LoadConfig(path string) (*FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	cfg, err := parseConfig(data, func(name string) (string, []byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		b, err := os.ReadFile(name)
		return name, b, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// readFunc reads a file the configuration names, returning its resolved
// path too.
type readFunc func(name string) (resolved string, data []byte, err error)

func parseConfig(data []byte, read readFunc) (*FileConfig, error) {
	var f fileJSON
	if err := decodeStrict(data, "", &f); err != nil {
		return nil, err
	}
	cfg := &FileConfig{AllowAnonymous: true, AllowedOrigins: f.AllowedOrigins}
	if f.AllowAnonymous != nil {
		cfg.AllowAnonymous = *f.AllowAnonymous
	}
	if err := parseAuth(f.Auth, read, &cfg.Auth); err != nil {
		return nil, err
	}
	if !cfg.AllowAnonymous && !cfg.Auth.Enabled() {
		return nil, errors.New("allow_anonymous: false, but auth configures no secret or public key: no client could connect")
	}
	for i, o := range cfg.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			return nil, fmt.Errorf("allowed_origins[%d]: %w", i, err)
		}
	}
	if f.Namespaces == nil {
		cfg.Namespaces = DefaultNamespaces()
	} else {
		cfg.Namespaces = make(map[string]Namespace, len(f.Namespaces))
		for _, name := range sortedKeys(f.Namespaces) {
			ns, err := parseNamespace(f.Namespaces[name], keyPath("namespaces", name), name, cfg)
			if err != nil {
				return nil, err
			}
			cfg.Namespaces[name] = ns
		}
	}
	if isSet(f.Limits) {
		if err := decodeStrict(f.Limits, "limits", &cfg.Limits); err != nil {
			return nil, err
		}
		if err := checkLimits(cfg.Limits); err != nil {
			return nil, err
		}
	}
	for i, raw := range f.PusherApps {
		var a PusherApp
		path := fmt.Sprintf("pusher_apps[%d]", i)
		if err := decodeStrict(raw, path, &a); err != nil {
			return nil, err
		}
		if a.ID == "" || a.Key == "" || a.Secret == "" {
			return nil, fmt.Errorf("%s: an app needs an id, a key and a secret", path)
		}
		if a.MaxConnections < 0 || a.MaxEventSize < 0 || a.MaxPresenceMembers < 0 {
			return nil, fmt.Errorf("%s: max_connections, max_event_size and max_presence_members must not be negative", path)
		}
		cfg.PusherApps = append(cfg.PusherApps, a)
	}
	return cfg, nil
}

func parseAuth(raw json.RawMessage, read readFunc, cfg *Config) error {
	if !isSet(raw) {
		return nil
	}
	var a authJSON
	if err := decodeStrict(raw, "auth", &a); err != nil {
		return err
	}
	*cfg = Config{
		Algorithms:    a.Algorithms,
		Audience:      a.Audience,
		Issuer:        a.Issuer,
		RequireExpiry: a.RequireExpiry,
	}
	if a.Secret != "" {
		if len(a.Secret) < MinHMACSecretSize {
			return fmt.Errorf("auth.secret: %d bytes, at least %d needed (for example `openssl rand -hex 32`)", len(a.Secret), MinHMACSecretSize)
		}
		cfg.HMACSecret = []byte(a.Secret)
	}
	if a.Leeway != "" {
		d, err := parseDuration(a.Leeway)
		if err != nil {
			return fmt.Errorf("auth.leeway: %w", err)
		}
		cfg.Leeway = d
	}
	for i, alg := range a.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			return fmt.Errorf("auth.algorithms[%d]: unsupported algorithm %q (supported: %s)", i, alg, strings.Join(supportedAlgorithms, ", "))
		}
	}
	var keys []crypto.PublicKey
	if a.PublicKeyFile != "" {
		name, data, err := read(a.PublicKeyFile)
		if err != nil {
			return fmt.Errorf("auth.public_key_file: %w", err)
		}
		pks, err := ParsePublicKeys(data)
		if err != nil {
			return fmt.Errorf("auth.public_key_file: %s: %w", name, err)
		}
		cfg.PublicKeyFile, keys = name, pks
	}
	if !cfg.Enabled() {
		if len(a.Algorithms) > 0 || a.Audience != "" || a.Issuer != "" || a.Leeway != "" || a.RequireExpiry {
			return errors.New("auth: options without auth.secret or auth.public_key_file")
		}
		return nil
	}
	// Check the combination (algorithms against keys) as the node will.
	check := *cfg
	check.PublicKeyFile, check.PublicKeys = "", keys
	if _, err := NewVerifier(check); err != nil {
		return err
	}
	return nil
}

func parseNamespace(raw json.RawMessage, path, name string, cfg *FileConfig) (Namespace, error) {
	if name != "" {
		if err := protocol.ValidateChannel(name); err != nil || strings.ContainsAny(name, ":#") {
			return Namespace{}, fmt.Errorf("%s: invalid namespace name: want letters, digits and _ - . @ / = , ~", path)
		}
	}
	var n namespaceJSON
	if err := decodeStrict(raw, path, &n); err != nil {
		return Namespace{}, err
	}
	ns := Namespace{
		Anonymous:              n.Anonymous,
		Subscribe:              SubscribePolicy(n.Subscribe),
		Publish:                n.Publish,
		PublishSubscribersOnly: n.PublishSubscribersOnly,
		Presence:               n.Presence,
		JoinLeave:              n.JoinLeave,
		HistorySize:            n.HistorySize,
		AttachInfo:             n.AttachInfo,
		AllowDelta:             n.AllowDelta,
		LatestOnSubscribe:      n.LatestOnSubscribe,
		NoWebhooks:             n.Webhooks != nil && !*n.Webhooks,
		SubscribeProxy:         n.SubscribeProxy,
		PublishProxy:           n.PublishProxy,
	}
	if err := checkProxySetting(n.SubscribeProxy); err != nil {
		return Namespace{}, fmt.Errorf("%s.subscribe_proxy: %w", path, err)
	}
	if err := checkProxySetting(n.PublishProxy); err != nil {
		return Namespace{}, fmt.Errorf("%s.publish_proxy: %w", path, err)
	}
	switch ns.Subscribe {
	case "":
		ns.Subscribe = SubscribePublic
	case SubscribePublic, SubscribeAuthenticated, SubscribeToken:
	default:
		return Namespace{}, fmt.Errorf("%s.subscribe: unknown policy %q (want public, authenticated or token)", path, n.Subscribe)
	}
	if n.HistoryTTL != "" {
		d, err := parseDuration(n.HistoryTTL)
		if err != nil {
			return Namespace{}, fmt.Errorf("%s.history_ttl: %w", path, err)
		}
		ns.HistoryTTL = d
	}
	switch {
	case ns.HistorySize < 0:
		return Namespace{}, fmt.Errorf("%s.history_size: must not be negative, got %d", path, ns.HistorySize)
	case ns.HistoryTTL > 0 && ns.HistorySize == 0:
		return Namespace{}, fmt.Errorf("%s.history_ttl: has no effect without history_size", path)
	case ns.LatestOnSubscribe && ns.HistorySize == 0:
		return Namespace{}, fmt.Errorf("%s.latest_on_subscribe: has no effect without history_size", path)
	case ns.PublishSubscribersOnly && !ns.Publish:
		return Namespace{}, fmt.Errorf("%s.publish_subscribers_only: has no effect without publish", path)
	case ns.Anonymous && ns.Subscribe != SubscribePublic:
		return Namespace{}, fmt.Errorf("%s.anonymous: has no effect with subscribe %q (only with public)", path, ns.Subscribe)
	case ns.Anonymous && !cfg.AllowAnonymous:
		return Namespace{}, fmt.Errorf("%s.anonymous: has no effect with allow_anonymous false", path)
	case ns.Subscribe == SubscribeToken && !cfg.Auth.Enabled():
		return Namespace{}, fmt.Errorf("%s.subscribe: %q needs auth.secret or auth.public_key_file to verify subscription tokens", path, ns.Subscribe)
	}
	return ns, nil
}

func checkLimits(l Limits) error {
	v := reflect.ValueOf(l)
	for i := range v.NumField() {
		f, name := v.Field(i), jsonName(v.Type().Field(i))
		if f.CanInt() && f.Int() < 0 {
			return fmt.Errorf("limits.%s: must not be negative, got %d", name, f.Int())
		}
	}
	frame := l.MaxFrameSize
	if frame == 0 {
		frame = defaultMaxFrameSize
	}
	switch {
	case l.MaxChannelLength > protocol.MaxChannelLength:
		return fmt.Errorf("limits.max_channel_length: at most %d, got %d", protocol.MaxChannelLength, l.MaxChannelLength)
	case l.MaxDataSize > frame:
		return fmt.Errorf("limits.max_data_size: %d is larger than the frame size limit %d (limits.max_frame_size)", l.MaxDataSize, frame)
	}
	return nil
}

// checkProxySetting accepts "", ProxyOff and http(s) URLs.
func checkProxySetting(v string) error {
	if v == "" || v == ProxyOff {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is neither %q nor an http or https URL", v, ProxyOff)
	}
	return nil
}

// checkOrigin accepts "*" and origins of the form scheme://host[:port].
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin such as https://example.com (or \"*\")", o)
	}
	return nil
}

// parseDuration parses a non-negative duration such as "24h" or "90s".
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative, got %s", s)
	}
	return d, nil
}
