package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/proxy"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

// loadConfig reads the --config file, if any, and applies its limits to cfg
// where no flag or environment variable (set) gave one.
func loadConfig(path string, set map[string]bool, cfg *redcast.Config) (*auth.FileConfig, error) {
	if path == "" {
		return nil, nil
	}
	fc, err := auth.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	l := fc.Limits
	for _, f := range []struct {
		flag string
		from int
		to   *int
	}{
		{"max-frame-size", l.MaxFrameSize, &cfg.MaxFrameSize},
		{"max-data-size", l.MaxDataSize, &cfg.MaxDataSize},
		{"max-channels", l.MaxChannels, &cfg.MaxChannels},
		{"max-channel-length", l.MaxChannelLength, &cfg.MaxChannelLength},
		{"max-connections", l.MaxConnections, &cfg.MaxConnections},
		{"publish-burst", l.PublishBurst, &cfg.PublishBurst},
		{"subscribe-burst", l.SubscribeBurst, &cfg.SubscribeBurst},
	} {
		if f.from != 0 && !set[f.flag] {
			*f.to = f.from
		}
	}
	if l.PublishRate != 0 && !set["publish-rate"] {
		cfg.PublishRate = l.PublishRate
	}
	if l.SubscribeRate != 0 && !set["subscribe-rate"] {
		cfg.SubscribeRate = l.SubscribeRate
	}
	if l.MaxRefusals != 0 {
		cfg.MaxRefusals = l.MaxRefusals
	}
	cfg.Namespaces = fc.Namespaces
	return fc, nil
}

// applyAuth sets up token verification from the file's auth section and
// the --token-secret flag (the flag wins for the secret), and whether
// anonymous clients are accepted.
func applyAuth(fc *auth.FileConfig, set map[string]bool, cfg *redcast.Config, secret string, allowAnonymous bool) error {
	var ac auth.Config
	if fc != nil {
		ac = fc.Auth
		if !set["allow-anonymous"] {
			allowAnonymous = fc.AllowAnonymous
		}
	}
	if secret != "" {
		ac.HMACSecret = []byte(secret)
	}
	cfg.RequireToken = !allowAnonymous
	if !ac.Enabled() {
		if cfg.RequireToken && cfg.Proxy.ConnectURL == "" {
			return fmt.Errorf("anonymous access is off but no token secret or key (nor --proxy-connect-url) is configured: nobody could connect")
		}
		return nil
	}
	v, err := auth.NewVerifier(ac)
	if err != nil {
		return fmt.Errorf("token verification: %w", err)
	}
	cfg.Verifier = v
	return nil
}

// pusherConfig returns the Pusher configuration: the apps of the file
// (fc, if any), whose channels are in the namespaces pusher-{id} and
// pusher-presence-{id} unless the file names others, and the app of the
// --pusher-* flags when they are set, which they must be all together.
func pusherConfig(fc *auth.FileConfig, id, key, secret string) (pusher.Config, error) {
	var cfg pusher.Config
	if fc != nil {
		for _, a := range fc.PusherApps {
			app := pusher.App{ID: a.ID, Key: a.Key, Secret: a.Secret, Namespace: a.Namespace, PresenceNamespace: a.PresenceNamespace,
				MaxConnections: a.MaxConnections, ClientEventRate: a.ClientEventRate, MaxEventSize: a.MaxEventSize, MaxPresenceMembers: a.MaxPresenceMembers, WebhookURL: a.WebhookURL}
			if err := checkHTTPURL(a.WebhookURL); err != nil {
				return pusher.Config{}, fmt.Errorf("pusher_apps: app %q: webhook_url: %w", a.ID, err)
			}
			if app.Namespace == "" {
				app.Namespace = pusher.DefaultNamespace + "-" + a.ID
			}
			if app.PresenceNamespace == "" {
				app.PresenceNamespace = pusher.DefaultPresenceNamespace + "-" + a.ID
			}
			cfg.Apps = append(cfg.Apps, app)
		}
	}
	if id == "" && key == "" && secret == "" {
		return cfg, nil
	}
	if id == "" || key == "" || secret == "" {
		return pusher.Config{}, errors.New("--pusher-app-id, --pusher-key and --pusher-secret go together")
	}
	cfg.Apps = append(cfg.Apps, pusher.App{ID: id, Key: key, Secret: secret})
	return cfg, nil
}

// maxProxyTimeout bounds --proxy-timeout.
const maxProxyTimeout = 30 * time.Second

// proxyFlags are the flags of the proxies to the application's backend
// (docs/backend.md).
type proxyFlags struct {
	connect, refresh, subscribe, publish, rpc string
	headers                                   string
	timeout                                   time.Duration
	maxInFlight                               int
}

func addProxyFlags(fs *flag.FlagSet) *proxyFlags {
	p := &proxyFlags{}
	fs.StringVar(&p.connect, "proxy-connect-url", "", "backend URL that authenticates clients connecting without a token (Centrifugo's connect proxy format; see docs/backend.md)")
	fs.StringVar(&p.refresh, "proxy-refresh-url", "", "backend URL that extends connections the connect proxy gave an expiry, before they expire")
	fs.StringVar(&p.subscribe, "proxy-subscribe-url", "", "backend URL that allows or refuses client subscribes, in every namespace that does not set subscribe_proxy")
	fs.StringVar(&p.publish, "proxy-publish-url", "", "backend URL that allows, refuses or rewrites client publishes, in every namespace that does not set publish_proxy (server API publishes do not go through it)")
	fs.StringVar(&p.rpc, "proxy-rpc-url", "", "backend URL that answers the rpc command")
	fs.StringVar(&p.headers, "proxy-headers", "", "comma-separated headers of a client's WebSocket or event stream request forwarded to the backend (e.g. Cookie,Authorization,X-Real-Ip)")
	fs.DurationVar(&p.timeout, "proxy-timeout", proxy.DefaultTimeout, "how long a call to the backend may take; past it the client gets error 117")
	fs.IntVar(&p.maxInFlight, "proxy-max-in-flight", proxy.DefaultMaxInFlight, "calls to the backend under way at once on this node; more wait within --proxy-timeout")
	return p
}

// config checks the flags and returns the node's proxy configuration,
// whose Backend is nil when no URL is set.
func (p *proxyFlags) config(fc *auth.FileConfig) (redcast.ProxyConfig, error) {
	cfg := redcast.ProxyConfig{ConnectURL: p.connect, RefreshURL: p.refresh, SubscribeURL: p.subscribe, PublishURL: p.publish, RPCURL: p.rpc}
	any := false
	for _, f := range []struct{ name, url string }{
		{"proxy-connect-url", p.connect}, {"proxy-refresh-url", p.refresh}, {"proxy-subscribe-url", p.subscribe},
		{"proxy-publish-url", p.publish}, {"proxy-rpc-url", p.rpc},
	} {
		if err := checkHTTPURL(f.url); err != nil {
			return cfg, fmt.Errorf("--%s %w", f.name, err)
		}
		any = any || f.url != ""
	}
	if fc != nil {
		for _, ns := range fc.Namespaces {
			for _, s := range []string{ns.SubscribeProxy, ns.PublishProxy} {
				any = any || (s != "" && s != auth.ProxyOff)
			}
		}
	}
	if p.timeout <= 0 || p.timeout > maxProxyTimeout {
		// A client waits for its call on its read goroutine: past the
		// ping timeout it would be taken for dead.
		return cfg, fmt.Errorf("--proxy-timeout %v: want more than 0 and at most %v", p.timeout, maxProxyTimeout)
	}
	if p.refresh != "" && p.connect == "" {
		return cfg, errors.New("--proxy-refresh-url extends the connections of --proxy-connect-url: set both")
	}
	if !any {
		return cfg, nil
	}
	var headers []string
	for _, h := range strings.Split(p.headers, ",") {
		if h = strings.TrimSpace(h); h != "" {
			headers = append(headers, h)
		}
	}
	cfg.Backend = proxy.New(proxy.Config{Timeout: p.timeout, MaxInFlight: p.maxInFlight, Headers: headers})
	return cfg, nil
}

// checkHTTPURL accepts an empty URL (the feature is off) or an absolute
// http or https URL: a webhook's or a proxy's.
func checkHTTPURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http or https URL", s)
	}
	return nil
}

// setWebhooks sets redcast's own webhook (URL and secret go together) and
// that of the app of the --pusher-* flags, whose id is flagApp.
func setWebhooks(scfg *server.Config, flagApp, pusherURL, nativeURL, secret string) error {
	if err := checkHTTPURL(nativeURL); err != nil {
		return fmt.Errorf("--webhook-url: %w", err)
	}
	if (nativeURL == "") != (secret == "") {
		return errors.New("--webhook-url and --webhook-secret go together")
	}
	scfg.Webhook = server.Webhook{URL: nativeURL, Secret: secret}
	if pusherURL == "" {
		return nil
	}
	if err := checkHTTPURL(pusherURL); err != nil {
		return fmt.Errorf("--pusher-webhook-url: %w", err)
	}
	for i, a := range scfg.Pusher.Apps {
		if a.ID == flagApp {
			scfg.Pusher.Apps[i].WebhookURL = pusherURL
			return nil
		}
	}
	return errors.New("--pusher-webhook-url needs --pusher-app-id, --pusher-key and --pusher-secret")
}
