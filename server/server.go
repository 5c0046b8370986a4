// Package server assembles a redcast node into an HTTP server: the chat page,
// the WebSocket endpoints and the health check, with ordered, graceful
// shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/api"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/metrics"
	"github.com/redcast/redcast/transport/pusher"
	"github.com/redcast/redcast/transport/sse"
	"github.com/redcast/redcast/transport/websocket"
	"github.com/redcast/redcast/web"
	"github.com/redcast/redcast/webhook"
)

// Config configures a Server. The zero value serves the defaults on the
// embedded memory broker.
type Config struct {
	// Node holds the limits and channel namespaces; see redcast.Config.
	Node redcast.Config
	// Broker and Presence are the engine; nil means the memory broker.
	Broker   broker.Broker
	Presence broker.PresenceManager
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// AllowedOrigins lists browser origins other than the server's own
	// that may open WebSockets ("*" for any). Default: same origin only.
	AllowedOrigins []string
	// PublicURL is the server's public origin (https://chat.example.com).
	// When set, a browser is let in only from it or AllowedOrigins,
	// whatever Host its request carries (see package internal/origin);
	// empty: the request's own scheme and Host are the server's origin.
	PublicURL string
	// ShutdownDelay is how long Shutdown keeps serving, not ready (/readyz
	// answers 503) and refusing new connections, before it closes the
	// listener and disconnects clients, so that load balancers stop
	// sending clients first; Pusher clients, which cannot be told a
	// reconnect delay, are closed one by one (4200) over the middle half
	// of it (pusher.Handler.Drain). Default 0.
	ShutdownDelay time.Duration
	// APIKey turns on the HTTP server API at /api/ for backends that send
	// "Authorization: apikey APIKey". Empty: the API is off (404).
	APIKey string
	// Pusher configures the Pusher protocol at /app/{key} (see package
	// transport/pusher). Without apps every connection there is refused
	// as Pusher refuses an unknown app key. The namespace of each app is
	// added to Node.Namespaces when missing (pusher.WithNamespaces).
	Pusher pusher.Config
	// Compression configures permessage-deflate on WebSockets (see
	// websocket.Compression); off by default.
	Compression websocket.Compression
	// Webhook configures redcast's own webhooks (docs/webhooks.md).
	Webhook Webhook
	// Webhooks tunes the webhook machine that sends them and the Pusher
	// apps' webhooks (queue, batches, retries); its Logger and
	// Registerer are the server's.
	Webhooks webhook.Config
}

// Server is a redcast HTTP server.
type Server struct {
	node    *redcast.Node
	log     *slog.Logger
	handler http.Handler
	http    *http.Server
	ws      *websocket.Handler
	pusher  *pusher.Handler
	// webhooks sends the native and Pusher webhooks; Shutdown flushes it.
	webhooks *webhook.Sender

	shutdownDelay time.Duration
	shutdownOnce  sync.Once
	shutdownErr   error
}

// New builds a server and starts its node (and so its broker).
func New(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBrokerMetrics(reg, cfg.Broker)
	cfg.Node.Namespaces = pusher.WithNamespaces(cfg.Node.Namespaces, cfg.Pusher)
	node := redcast.NewNode(cfg.Node, redcast.Deps{Broker: cfg.Broker, Presence: cfg.Presence, Logger: log, Metrics: metrics.New(reg)})
	wcfg := cfg.Webhooks
	wcfg.Logger, wcfg.Registerer = log, reg
	webhooks := webhook.New(wcfg)
	if err := startWebhook(node, webhooks, cfg.Webhook); err != nil {
		_ = webhooks.Close(context.Background())
		return nil, fmt.Errorf("server: %w", err)
	}
	cfg.Pusher.Webhooks = webhooks
	if err := node.Start(context.Background()); err != nil {
		_ = webhooks.Close(context.Background())
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{node: node, log: log, shutdownDelay: cfg.ShutdownDelay, webhooks: webhooks}
	ws := websocket.NewHandler(node, websocket.Options{AllowedOrigins: cfg.AllowedOrigins, PublicURL: cfg.PublicURL, Logger: log, Compression: cfg.Compression})
	s.ws = ws
	mux := http.NewServeMux()
	mux.Handle("GET /connection/websocket", ws.Protocol())
	mux.Handle("GET /rooms/{room}", ws.Plain())
	if cfg.Pusher.Logger == nil {
		cfg.Pusher.Logger = log
	}
	ph, err := pusher.NewHandler(node, ws, cfg.Pusher)
	if err != nil {
		_ = node.Shutdown(context.Background())
		_ = ws.Close()
		_ = webhooks.Close(context.Background())
		return nil, fmt.Errorf("server: %w", err)
	}
	s.pusher = ph
	mux.Handle("GET /app/{key}", ph)
	mux.Handle("/apps/", ph.API())
	events := sse.NewHandler(node, sse.Options{AllowedOrigins: cfg.AllowedOrigins, PublicURL: cfg.PublicURL, Logger: log})
	mux.Handle("GET /connection/sse", events)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !node.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if cfg.APIKey != "" {
		h, err := api.NewHandler(node, api.Options{Key: cfg.APIKey, Logger: log})
		if err != nil {
			_ = node.Shutdown(context.Background())
			_ = ws.Close()
			_ = webhooks.Close(context.Background())
			return nil, fmt.Errorf("server: %w", err)
		}
		mux.Handle("/api/", h)
	} else {
		mux.Handle("/api/", http.NotFoundHandler())
	}
	mux.Handle("/", web.Handler())
	s.handler = mux
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Event streams are running requests, which http.Server.Shutdown would
	// wait for: Drain ends them (with a 3001 event) when it begins.
	s.http.RegisterOnShutdown(events.Drain)
	return s, nil
}

// registerBrokerMetrics exports the counters a broker keeps, for brokers
// that keep them (the Redis one).
func registerBrokerMetrics(reg prometheus.Registerer, b broker.Broker) {
	counter := func(name, help string, value func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metrics.Namespace, Name: name, Help: help},
			func() float64 { return float64(value()) }))
	}
	if d, ok := b.(interface{ Dropped() uint64 }); ok {
		counter("broker_dropped_total", "Pub/sub messages the broker dropped on a full delivery queue (and then read from history instead).", d.Dropped)
	}
	if p, ok := b.(interface{ ProbeFailures() uint64 }); ok {
		counter("broker_probe_failures_total", "Pub/sub connections replaced because a probe publication did not come back in time.", p.ProbeFailures)
	}
	if r, ok := b.(interface{ Rewinds() uint64 }); ok {
		counter("broker_rewinds_total", "Channels restarted in a new epoch because Redis may have lost writes of them (a failover or restart of their master, or a stream found behind what was delivered).", r.Rewinds)
	}
	if r, ok := b.(interface{ Reconnects() uint64 }); ok {
		counter("broker_reconnects_total", "Times the broker's pub/sub connection was re-established.", r.Reconnects)
	}
}

// Node returns the server's node.
func (s *Server) Node() *redcast.Node { return s.node }

// Handler returns the server's HTTP handler, for mounting elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve accepts connections on ln until Shutdown; it then returns
// http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(ln) }

// ServeTLS is Serve with TLS (https and wss) from a certificate and key in
// PEM files.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.http.ServeTLS(ln, certFile, keyFile)
}

// Shutdown stops accepting connections, tells every client to reconnect
// elsewhere (disconnect 3001), waits for them to close until ctx ends, and
// closes the broker and the WebSocket handler (its poller of idle
// connections). It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		if s.shutdownDelay > 0 {
			s.node.Drain()
			t := time.NewTimer(s.shutdownDelay)
			// Pusher's clients cannot be told a reconnect delay: they are
			// closed one by one over the middle of the delay instead.
			s.pusher.Drain(ctx, s.shutdownDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		// http.Server.Shutdown closes listeners and idle HTTP connections
		// but does not know about hijacked WebSockets: the node closes those.
		herr := s.http.Shutdown(ctx)
		nerr := s.node.Shutdown(ctx)
		if errors.Is(herr, http.ErrServerClosed) {
			herr = nil
		}
		// Connections still parked (past ctx) get read loops of their own.
		werr := s.ws.Close()
		// The node's last transitions (its channels vacated) are queued:
		// they are delivered within what is left of ctx.
		hookErr := s.webhooks.Close(ctx)
		s.shutdownErr = errors.Join(herr, nerr, werr, hookErr)
	})
	return s.shutdownErr
}
