package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

// The webhook flags and the file's webhook_url: URLs checked, the native
// URL and secret together, --pusher-webhook-url on the app of the flags.
func TestWebhookConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	if err := os.WriteFile(file, []byte(`{"pusher_apps":[{"id":"1","key":"k1","secret":"s1","webhook_url":"https://hooks.example.com/1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := auth.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                               string
		flagApp, pusherURL, native, secret string
		err                                string
		wantApp2, wantNative               string
	}{
		{name: "none", flagApp: "2"},
		{name: "all", flagApp: "2", pusherURL: "http://127.0.0.1:9/2", native: "http://127.0.0.1:9/n", secret: "s",
			wantApp2: "http://127.0.0.1:9/2", wantNative: "http://127.0.0.1:9/n"},
		{name: "no secret", flagApp: "2", native: "http://h/n", err: "go together"},
		{name: "secret alone", flagApp: "2", secret: "s", err: "go together"},
		{name: "not http", flagApp: "2", native: "ftp://h/n", secret: "s", err: "--webhook-url"},
		{name: "relative", flagApp: "2", pusherURL: "/hook", err: "--pusher-webhook-url"},
		{name: "no flag app", pusherURL: "http://h/2", err: "needs --pusher-app-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, key, secret := tc.flagApp, "k2", "s2"
			if id == "" {
				key, secret = "", ""
			}
			pc, err := pusherConfig(fc, id, key, secret)
			if err != nil {
				t.Fatal(err)
			}
			scfg := serverConfigWith(pc)
			err = setWebhooks(&scfg, tc.flagApp, tc.pusherURL, tc.native, tc.secret)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if scfg.Webhook.URL != tc.wantNative || scfg.Pusher.Apps[0].WebhookURL != "https://hooks.example.com/1" ||
				(len(scfg.Pusher.Apps) > 1 && scfg.Pusher.Apps[1].WebhookURL != tc.wantApp2) {
				t.Errorf("webhooks %+v, apps %+v", scfg.Webhook, scfg.Pusher.Apps)
			}
		})
	}
	if _, err := pusherConfig(&auth.FileConfig{PusherApps: []auth.PusherApp{{ID: "1", Key: "k", Secret: "s", WebhookURL: "nope"}}}, "", "", ""); err == nil {
		t.Error("a webhook_url that is not a URL accepted")
	}
}

func serverConfigWith(pc pusher.Config) server.Config { return server.Config{Pusher: pc} }
