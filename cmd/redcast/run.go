package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/internal/origin"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/websocket"
)

// run parses args (flags, each also settable from the environment as
// REDCAST_FLAG_NAME) and serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "serve":
			args = args[1:]
		case "version":
			return runVersion(args[1:], stdout, stderr)
		case "token":
			return runToken(args[1:], getenv, stdout, stderr)
		case "pub":
			return runPub(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
		case "sub":
			return runSub(ctx, args[1:], getenv, stdout, stderr)
		case "bench":
			return runBench(ctx, args[1:], getenv, stdout, stderr)
		case "chaos":
			return runChaos(ctx, args[1:], stdout, stderr)
		default:
			return fmt.Errorf("unknown command %q (commands: serve, pub, sub, token, bench, chaos, version)", args[0])
		}
	}
	fs := flag.NewFlagSet("redcast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr            = fs.String("addr", ":8080", "address to listen on")
		logLevel        = fs.String("log-level", "info", "log level: debug, info, warn, error")
		logFormat       = fs.String("log-format", "text", "log format: text or json")
		shutdownTimeout = fs.Duration("shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
		shutdownDelay   = fs.Duration("shutdown-delay", 0, "on SIGTERM, how long to keep serving with /readyz answering 503 (so load balancers stop sending clients) before closing the listener and disconnecting clients; counts against --shutdown-timeout")
		historySize     = fs.Int("history-size", 100, "publications kept per channel of the chat and default namespaces")
		historyTTL      = fs.Duration("history-ttl", 24*time.Hour, "how long a publication stays in history")
		redisURL        = fs.String("redis", "", "Redis URL: redis://[user:pass@]host:port/db (rediss:// for TLS); a Cluster as redis://host1:port1?addr=host2:port2&addr=host3:port3; Sentinel as redis://s1:26379?addr=s2:26379&master_set=NAME. Empty runs the embedded memory broker on one node")
		redisPrefix     = fs.String("redis-prefix", "redcast", "prefix of every Redis key and channel, so deployments can share one Redis")
		configFile      = fs.String("config", "", "JSON configuration file: auth, namespaces, origins, limits (see docs/configuration.md)")
		tokenSecret     = fs.String("token-secret", "", "HMAC secret (32 bytes or more) that verifies HS256 connection and subscription tokens")
		allowAnonymous  = fs.Bool("allow-anonymous", true, "let clients connect without a token (the development default that serves the demo chat)")
		tlsCert         = fs.String("tls-cert", "", "PEM certificate file: serve https and wss (with --tls-key)")
		tlsKey          = fs.String("tls-key", "", "PEM private key file of --tls-cert")
		allowedOrigins  = fs.String("allowed-origins", "", "comma-separated browser origins besides the server's own that may open WebSockets (* for any)")
		publicURL       = fs.String("public-url", "", "the server's public origin, e.g. https://chat.example.com: browsers are let in from it (and --allowed-origins) only, whatever Host their requests carry")
		debugAddr       = fs.String("debug-addr", "", "address of a separate listener serving net/http/pprof at /debug/pprof/ (keep it private); empty: off")
		apiKey          = fs.String("api-key", "", "key of the HTTP server API at /api/ (header \"Authorization: apikey KEY\"); empty turns the API off")
		pusherApp       = fs.String("pusher-app-id", "", "id of the Pusher app served at /app/{key} (with --pusher-key and --pusher-secret; see docs/pusher.md)")
		pusherKey       = fs.String("pusher-key", "", "key of the Pusher app: pusher-js connects with it")
		pusherSecret    = fs.String("pusher-secret", "", "secret of the Pusher app: it signs channel auth and HTTP API requests")
		pusherWebhook   = fs.String("pusher-webhook-url", "", "URL that receives the webhooks of the app of --pusher-app-id, signed with its key and secret as Pusher signs them (see docs/pusher.md)")
		webhookURL      = fs.String("webhook-url", "", "URL that receives redcast's webhooks: channels occupied and vacated, presence joins and leaves, connections opened and closed (see docs/webhooks.md)")
		webhookSecret   = fs.String("webhook-secret", "", "secret of --webhook-url: each POST carries X-Redcast-Signature, the hex HMAC-SHA256 of its body with it")
		presenceTTL     = fs.Duration("presence-ttl", 60*time.Second, "with --redis: how long a crashed node's clients stay in presence before the other nodes send their leaves (nodes refresh their entries every third of it)")
		cfg             redcast.Config
		compression     websocket.Compression
	)
	fs.BoolVar(&compression.Enabled, "compression", false, "negotiate permessage-deflate with WebSocket clients that offer it (see docs/performance.md for when it pays)")
	fs.IntVar(&compression.MinSize, "compression-min-size", 256, "with --compression: messages shorter than this many bytes go out uncompressed (0: compress every message)")
	fs.IntVar(&compression.Level, "compression-level", 1, "with --compression: flate level, 1 (fastest) to 9 (smallest)")
	fs.IntVar(&cfg.MaxFrameSize, "max-frame-size", 64<<10, "largest WebSocket frame a client may send, in bytes")
	fs.IntVar(&cfg.MaxDataSize, "max-data-size", 16<<10, "largest publication data a client may send, in bytes")
	fs.IntVar(&cfg.MaxChannels, "max-channels", 128, "channels one connection may subscribe to")
	fs.IntVar(&cfg.QueueMaxMessages, "queue-max-messages", 1024, "messages queued per connection before it is disconnected as slow")
	fs.IntVar(&cfg.QueueMaxBytes, "queue-max-bytes", 1<<20, "bytes queued per connection before it is disconnected as slow")
	fs.IntVar(&cfg.MaxChannelLength, "max-channel-length", 255, "longest channel name accepted, in bytes (at most 255)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", 100000, "connections the node accepts at once")
	fs.Float64Var(&cfg.PublishRate, "publish-rate", 1000, "publishes per second per connection on average (negative: no limit)")
	fs.IntVar(&cfg.PublishBurst, "publish-burst", 2000, "publishes one connection may make in a burst")
	fs.Float64Var(&cfg.SubscribeRate, "subscribe-rate", 50, "subscribes per second per connection on average (negative: no limit)")
	fs.IntVar(&cfg.SubscribeBurst, "subscribe-burst", 200, "subscribes one connection may make in a burst")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of this node on the admin page and in /api/info (default: the host name)")
	fs.DurationVar(&cfg.ReconnectSpread, "reconnect-spread", 3*time.Second, "at shutdown, clients are told to wait a random delay up to this before reconnecting")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 25*time.Second, "interval of server pings")
	fs.DurationVar(&cfg.FlushWindow, "flush-window", redcast.DefaultFlushWindow, "how long a busy connection gathers messages between two writes (stretched up to 24ms more while the process is saturated); negative: write at once")
	fs.DurationVar(&cfg.PongTimeout, "pong-timeout", 10*time.Second, "silence past the ping interval after which a connection is closed")
	fs.DurationVar(&cfg.IdempotencyWindow, "idempotency-window", broker.DefaultIdempotencyTTL, "how long a publish's idempotency_key is remembered: the same key in the same channel within it returns the first publication's position and publishes nothing")
	proxyOpts := addProxyFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: redcast [serve] [flags]\n       redcast pub|sub|token|bench|chaos --help\n       redcast version\n\n"+
			"Every flag can also be set with an environment variable: --max-frame-size as REDCAST_MAX_FRAME_SIZE.\n"+
			"A flag on the command line wins over the environment, which wins over --config.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	set, err := parseWithEnv(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if compression.MinSize == 0 {
		compression.MinSize = -1 // the flag's 0 compresses everything; the option's 0 is the default
	}
	fc, err := loadConfig(*configFile, set, &cfg)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.Proxy, err = proxyOpts.config(fc); err != nil {
		return err
	}
	if pc, ok := cfg.Proxy.Backend.(interface{ CloseIdleConnections() }); ok {
		defer pc.CloseIdleConnections() // after the server's shutdown
	}
	if err := applyAuth(fc, set, &cfg, *tokenSecret, *allowAnonymous); err != nil {
		return err
	}
	if fc == nil || fc.Namespaces == nil {
		// --history-size and --history-ttl shape the default namespaces.
		cfg.Namespaces = auth.DefaultNamespaces()
		for name, ns := range cfg.Namespaces {
			ns.HistorySize, ns.HistoryTTL = *historySize, *historyTTL
			cfg.Namespaces[name] = ns
		}
	}

	if *publicURL != "" {
		if _, ok := origin.Canonical(*publicURL); !ok {
			return fmt.Errorf("--public-url %q: want scheme://host[:port] with http or https", *publicURL)
		}
	}
	scfg := server.Config{Node: cfg, Logger: log, APIKey: *apiKey, ShutdownDelay: *shutdownDelay, PublicURL: *publicURL, Compression: compression}
	if scfg.Pusher, err = pusherConfig(fc, *pusherApp, *pusherKey, *pusherSecret); err != nil {
		return err
	}
	if err := setWebhooks(&scfg, *pusherApp, *pusherWebhook, *webhookURL, *webhookSecret); err != nil {
		return err
	}
	if fc != nil && !set["allowed-origins"] {
		scfg.AllowedOrigins = fc.AllowedOrigins
	}
	for _, o := range strings.Split(*allowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			scfg.AllowedOrigins = append(scfg.AllowedOrigins, o)
		}
	}
	brokerName := "memory"
	if *redisURL != "" {
		rb, err := redis.New(ctx, redis.Config{URL: *redisURL, Prefix: *redisPrefix, HistoryTTL: *historyTTL, PresenceTTL: *presenceTTL})
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		scfg.Broker, scfg.Presence, brokerName = rb, rb, "redis"
	}
	if *debugAddr != "" {
		d, err := startDebug(*debugAddr, log)
		if err != nil {
			return err
		}
		defer func() {
			if err := d.stop(); err != nil {
				log.Warn("debug server", "err", err)
			}
		}()
	}
	srv, err := server.New(scfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = srv.Shutdown(ctx)
		return fmt.Errorf("listen: %w", err)
	}
	ver, rev := buildVersion()
	log.Info("redcast serving", "addr", ln.Addr().String(), "tls", *tlsCert != "", "version", ver, "commit", rev, "broker", brokerName)
	served := make(chan error, 1)
	go func() {
		if *tlsCert != "" {
			served <- srv.ServeTLS(ln, *tlsCert, *tlsKey)
			return
		}
		served <- srv.Serve(ln)
	}()
	select {
	case err := <-served:
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// parseWithEnv parses args, then sets every flag not given on the command
// line from its REDCAST_ environment variable. It returns the names of the
// flags set either way.
func parseWithEnv(fs *flag.FlagSet, args []string, getenv func(string) string) (map[string]bool, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		key := "REDCAST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("environment %s=%q: %w", key, v, serr)
			}
			set[f.Name] = true
		}
	})
	return set, err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}
