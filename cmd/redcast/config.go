package main

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
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
		if cfg.RequireToken {
			return fmt.Errorf("anonymous access is off but no token secret or key is configured: nobody could connect")
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
			app := pusher.App{ID: a.ID, Key: a.Key, Secret: a.Secret, Namespace: a.Namespace, PresenceNamespace: a.PresenceNamespace, WebhookURL: a.WebhookURL}
			if err := checkWebhookURL(a.WebhookURL); err != nil {
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

// checkWebhookURL accepts an empty URL (no webhooks) or an absolute http
// or https URL.
func checkWebhookURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

// setWebhooks sets redcast's own webhook (URL and secret go together) and
// that of the app of the --pusher-* flags, whose id is flagApp.
func setWebhooks(scfg *server.Config, flagApp, pusherURL, nativeURL, secret string) error {
	if err := checkWebhookURL(nativeURL); err != nil {
		return fmt.Errorf("--webhook-url: %w", err)
	}
	if (nativeURL == "") != (secret == "") {
		return errors.New("--webhook-url and --webhook-secret go together")
	}
	scfg.Webhook = server.Webhook{URL: nativeURL, Secret: secret}
	if pusherURL == "" {
		return nil
	}
	if err := checkWebhookURL(pusherURL); err != nil {
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
