package auth

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// noFiles is a readFunc for configurations that name no file.
func noFiles(name string) (string, []byte, error) { return name, nil, os.ErrNotExist }

func TestLoadConfigDefaults(t *testing.T) {
	for _, data := range []string{`{}`, `{"auth": null, "namespaces": null, "limits": null}`, " {\n}\n"} {
		cfg, err := LoadConfig(writeFile(t, "redcast.json", []byte(data)))
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if !cfg.AllowAnonymous || cfg.Auth.Enabled() || cfg.AllowedOrigins != nil || cfg.Limits != (Limits{}) {
			t.Errorf("%q: %+v, want the defaults", data, cfg)
		}
		if !maps.Equal(cfg.Namespaces, DefaultNamespaces()) {
			t.Errorf("%q: namespaces %+v, want the defaults", data, cfg.Namespaces)
		}
	}
}

// TestConfigurationDocExamples loads the JSON examples of
// docs/configuration.md, so that the documentation stays true.
func TestConfigurationDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 2 {
		t.Fatalf("found %d JSON blocks, want the example and the default namespaces", len(blocks))
	}
	cfg, err := LoadConfig(writeFile(t, "redcast.json", blocks[0][1]))
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	if cfg.AllowAnonymous || !cfg.Auth.Enabled() || cfg.Auth.Leeway != 5*time.Second || !cfg.Auth.RequireExpiry ||
		cfg.Namespaces["dm"].HistoryTTL != 168*time.Hour || cfg.Namespaces["private"].Subscribe != SubscribeToken ||
		cfg.Namespaces["news"].Subscribe != SubscribeAuthenticated || cfg.Limits.PublishRate != 10 || len(cfg.Namespaces) != 4 {
		t.Errorf("example loaded as %+v", cfg)
	}
	if _, err := NewVerifier(cfg.Auth); err != nil {
		t.Errorf("the example's auth: %v", err)
	}
	defaults, err := LoadConfig(writeFile(t, "defaults.json", []byte("{"+string(blocks[1][1])+"}")))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(defaults.Namespaces, DefaultNamespaces()) {
		t.Errorf("documented default namespaces %+v differ from DefaultNamespaces", defaults.Namespaces)
	}
}

func TestLoadConfigPublicKeyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pemOf(t, &p256Key().PublicKey), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "redcast.json")
	if err := os.WriteFile(path, []byte(`{"auth": {"public_key_file": "key.pem", "algorithms": ["ES256"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.PublicKeyFile != filepath.Join(dir, "key.pem") {
		t.Errorf("public key file %q, want it next to the configuration", cfg.Auth.PublicKeyFile)
	}
	if v, err := NewVerifier(cfg.Auth); err != nil || v.Algorithms()[0] != "ES256" {
		t.Errorf("NewVerifier: %v", err)
	}
}

// TestLoadConfigErrors checks that every bad configuration is refused with
// the key at fault named.
func TestLoadConfigErrors(t *testing.T) {
	secret := `"secret": "` + string(testSecret) + `"`
	rsaFile := writeFile(t, "rsa.pem", pemOf(t, &rsaKey().PublicKey))
	for _, tc := range []struct{ name, data, want string }{
		{"empty", ``, "empty: want a JSON object"},
		{"not an object", `[]`, "want a JSON object"},
		{"syntax", "{\n  \"namespaces\": {,}\n}", "line 2, column 18: invalid character ','"},
		{"truncated", `{"namespaces": {`, "line 1, column 16: unexpected end of JSON input"},
		{"trailing data", `{} {}`, "line 1, column 4: invalid character '{' after top-level value"},
		{"unknown key", `{"namespces": {}}`, `unknown key "namespces" (did you mean "namespaces"?)`},
		{"wrong case", `{"Namespaces": {}}`, `unknown key "Namespaces" (did you mean "namespaces"?)`},
		{"unknown key far off", `{"color": "red"}`, `unknown key "color"`},
		{"pusher app without secret", `{"pusher_apps": [{"id": "1", "key": "k", "secret": "s"}, {"id": "2", "key": "k2"}]}`, "pusher_apps[1]: an app needs an id, a key and a secret"},
		{"pusher app negative limit", `{"pusher_apps": [{"id": "1", "key": "k", "secret": "s", "max_connections": -1}]}`, "pusher_apps[0]: max_connections, max_event_size and max_presence_members must not be negative"},
		{"pusher app unknown key", `{"pusher_apps": [{"id": "1", "key": "k", "secret": "s", "cluster": "eu"}]}`, `pusher_apps[0]: unknown key "cluster"`},
		{"allow_anonymous type", `{"allow_anonymous": "yes"}`, "allow_anonymous: want true or false, got string"},
		{"allowed_origins type", `{"allowed_origins": "https://a.example"}`, "allowed_origins: want a list of strings, got string"},
		{"origin without scheme", `{"allowed_origins": ["https://ok.example", "example.com"]}`, `allowed_origins[1]: "example.com" is not an origin`},
		{"origin with a path", `{"allowed_origins": ["https://example.com/app"]}`, "allowed_origins[0]"},
		{"anonymous off without auth", `{"allow_anonymous": false}`, "allow_anonymous: false, but auth configures no secret or public key"},
		{"auth not an object", `{"auth": "secret"}`, "auth: want a JSON object"},
		{"auth unknown key", `{"auth": {"secrett": "x"}}`, `auth: unknown key "secrett" (did you mean "secret"?)`},
		{"auth short secret", `{"auth": {"secret": "short"}}`, "auth.secret: 5 bytes, at least 32 needed"},
		{"auth bad leeway", `{"auth": {` + secret + `, "leeway": "5"}}`, `auth.leeway: time: missing unit in duration "5"`},
		{"auth negative leeway", `{"auth": {` + secret + `, "leeway": "-5s"}}`, "auth.leeway: must not be negative"},
		{"auth alg none", `{"auth": {` + secret + `, "algorithms": ["HS256", "none"]}}`, `auth.algorithms[1]: unsupported algorithm "none"`},
		{"auth algorithms type", `{"auth": {` + secret + `, "algorithms": "HS256"}}`, "auth.algorithms: want a list of strings, got string"},
		{"auth alg without key", `{"auth": {` + secret + `, "algorithms": ["HS256", "RS256"]}}`, "auth: algorithm RS256 is pinned but no public key verifies it"},
		{"auth secret not pinned", `{"auth": {` + secret + `, "public_key_file": "` + rsaFile + `", "algorithms": ["RS256"]}}`, "auth: an HMAC secret is set but no HS algorithm is pinned"},
		{"auth missing key file", `{"auth": {"public_key_file": "missing.pem"}}`, "auth.public_key_file: "},
		{"auth options without key", `{"auth": {"audience": "x"}}`, "auth: options without auth.secret or auth.public_key_file"},
		{"namespaces type", `{"namespaces": []}`, "namespaces: want an object, got array"},
		{"namespace type", `{"namespaces": {"chat": true}}`, "namespaces.chat: want a JSON object"},
		{"namespace name", `{"namespaces": {"a:b": {}}}`, `namespaces."a:b": invalid namespace name`},
		{"namespace name with space", `{"namespaces": {"a b": {}}}`, `namespaces."a b": invalid namespace name`},
		{"namespace unknown key", `{"namespaces": {"chat": {"histroy_size": 10}}}`, `namespaces.chat: unknown key "histroy_size" (did you mean "history_size"?)`},
		{"default namespace unknown key", `{"namespaces": {"": {"x": 1}}}`, `namespaces."": unknown key "x"`},
		{"history_size type", `{"namespaces": {"chat": {"history_size": "100"}}}`, "namespaces.chat.history_size: want an integer, got string"},
		{"history_size fraction", `{"namespaces": {"chat": {"history_size": 1.5}}}`, "namespaces.chat.history_size: want an integer, got number 1.5"},
		{"history_size negative", `{"namespaces": {"chat": {"history_size": -1}}}`, "namespaces.chat.history_size: must not be negative"},
		{"history_ttl bad", `{"namespaces": {"chat": {"history_size": 10, "history_ttl": "1 day"}}}`, `namespaces.chat.history_ttl: time: unknown unit " day" in duration "1 day"`},
		{"history_ttl number", `{"namespaces": {"chat": {"history_size": 10, "history_ttl": 86400}}}`, "namespaces.chat.history_ttl: want a string, got number"},
		{"history_ttl negative", `{"namespaces": {"chat": {"history_size": 10, "history_ttl": "-1h"}}}`, "namespaces.chat.history_ttl: must not be negative"},
		{"history_ttl without size", `{"namespaces": {"chat": {"history_ttl": "1h"}}}`, "namespaces.chat.history_ttl: has no effect without history_size"},
		{"latest without history", `{"namespaces": {"lobby": {"latest_on_subscribe": true}}}`, "namespaces.lobby.latest_on_subscribe: has no effect without history_size"},
		{"unknown policy", `{"namespaces": {"chat": {"subscribe": "private"}}}`, `namespaces.chat.subscribe: unknown policy "private" (want public, authenticated or token)`},
		{"token without auth", `{"namespaces": {"p": {"subscribe": "token"}}}`, `namespaces.p.subscribe: "token" needs auth.secret or auth.public_key_file`},
		{"anonymous with token", `{"auth": {` + secret + `}, "namespaces": {"p": {"subscribe": "token", "anonymous": true}}}`, `namespaces.p.anonymous: has no effect with subscribe "token"`},
		{"anonymous when off", `{"auth": {` + secret + `}, "allow_anonymous": false, "namespaces": {"chat": {"anonymous": true}}}`, "namespaces.chat.anonymous: has no effect with allow_anonymous false"},
		{"subscribers only without publish", `{"namespaces": {"chat": {"publish_subscribers_only": true}}}`, "namespaces.chat.publish_subscribers_only: has no effect without publish"},
		{"limits unknown key", `{"limits": {"max_frame": 1}}`, `limits: unknown key "max_frame"`},
		{"limits type", `{"limits": {"max_frame_size": "64k"}}`, "limits.max_frame_size: want an integer, got string"},
		{"limits negative", `{"limits": {"max_channels": -1}}`, "limits.max_channels: must not be negative, got -1"},
		{"limits negative burst", `{"limits": {"publish_burst": -5}}`, "limits.publish_burst: must not be negative"},
		{"limits rate type", `{"limits": {"publish_rate": "fast"}}`, "limits.publish_rate: want a number, got string"},
		{"limits channel length", `{"limits": {"max_channel_length": 300}}`, "limits.max_channel_length: at most 255"},
		{"limits data above frame", `{"limits": {"max_frame_size": 1000, "max_data_size": 2000}}`, "limits.max_data_size: 2000 is larger than the frame size limit 1000"},
		{"limits data above default frame", `{"limits": {"max_data_size": 100000}}`, "limits.max_data_size: 100000 is larger than the frame size limit 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "redcast.json", []byte(tc.data))
			cfg, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			if want := path + ": " + tc.want; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q\nwant it to contain %q", err, want)
			}
		})
	}
}

func TestLoadConfigAccepts(t *testing.T) {
	cfg, err := LoadConfig(writeFile(t, "redcast.json", []byte(`{
		"allowed_origins": ["https://a.example", "http://localhost:3000", "*"],
		"limits": {"publish_rate": -1, "subscribe_rate": 0.5, "max_data_size": 65536},
		"namespaces": {"": {}, "x.y-z_1": {"publish": true, "publish_subscribers_only": true, "allow_delta": true, "history_size": 1, "latest_on_subscribe": true, "webhooks": false}},
		"pusher_apps": [{"id": "1", "key": "k1", "secret": "s1"}, {"id": "2", "key": "k2", "secret": "s2", "namespace": "b", "presence_namespace": "b-presence",
			"max_connections": 5, "client_event_rate": -1, "max_event_size": 100, "max_presence_members": 3}]
	}`)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.PublishRate != -1 || cfg.Limits.SubscribeRate != 0.5 || len(cfg.Namespaces) != 2 ||
		cfg.Namespaces[""].Subscribe != SubscribePublic || !cfg.Namespaces["x.y-z_1"].PublishSubscribersOnly ||
		!cfg.Namespaces["x.y-z_1"].AllowDelta || !cfg.Namespaces["x.y-z_1"].LatestOnSubscribe || cfg.Namespaces[""].AllowDelta ||
		!cfg.Namespaces["x.y-z_1"].NoWebhooks || cfg.Namespaces[""].NoWebhooks ||
		len(cfg.PusherApps) != 2 || cfg.PusherApps[1] != (PusherApp{ID: "2", Key: "k2", Secret: "s2", Namespace: "b", PresenceNamespace: "b-presence",
		MaxConnections: 5, ClientEventRate: -1, MaxEventSize: 100, MaxPresenceMembers: 3}) {
		t.Errorf("loaded %+v", cfg)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestNamespaceProxySettings(t *testing.T) {
	cfg, err := parseConfig([]byte(`{"namespaces": {"a": {"subscribe_proxy": "off", "publish_proxy": "https://app.example/p"}, "b": {}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Namespaces["a"]; a.SubscribeProxy != ProxyOff || a.PublishProxy != "https://app.example/p" {
		t.Errorf("namespace a: %+v", a)
	}
	if b := cfg.Namespaces["b"]; b.SubscribeProxy != "" || b.PublishProxy != "" {
		t.Errorf("namespace b: %+v", b)
	}
	_, err = parseConfig([]byte(`{"namespaces": {"a": {"publish_proxy": "nope"}}}`), nil)
	if err == nil || !strings.Contains(err.Error(), "namespaces.a.publish_proxy") {
		t.Errorf("bad publish_proxy: %v", err)
	}
}
