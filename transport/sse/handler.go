package sse

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/origin"
	"github.com/redcast/redcast/protocol"
)

// DefaultRetry is the reconnection delay advised to clients when
// Options.Retry is zero.
const DefaultRetry = 3 * time.Second

// Options configure a Handler. The zero value means the defaults.
type Options struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open event streams besides the server's own origin; "*" allows
	// any. Requests without an Origin header (non-browser clients) are
	// always allowed. Default: same origin only.
	AllowedOrigins []string
	// PublicURL is the server's public origin (scheme://host[:port]).
	// When set, it is the server's own origin, whatever Host a request
	// carries; empty: the request's scheme and Host are.
	PublicURL string
	// Retry is the reconnection delay advised to clients (the retry
	// field). A stream that ends with a disconnect advising to reconnect
	// advises Retry to 2×Retry instead, so that the clients of a node that
	// shuts down do not all come back at once. Default DefaultRetry.
	Retry time.Duration
	// Logger receives connection logs; nil discards them.
	Logger *slog.Logger
}

// Handler serves event streams of one node. It is safe for concurrent use.
type Handler struct {
	node *redcast.Node
	log  *slog.Logger
	opts Options

	quit      chan struct{} // closed by Drain
	drainOnce sync.Once
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler for node (mount it at GET /connection/sse).
func NewHandler(node *redcast.Node, opts Options) *Handler {
	if opts.Retry <= 0 {
		opts.Retry = DefaultRetry
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{node: node, log: log, opts: opts, quit: make(chan struct{})}
}

// Drain ends every stream with a disconnect event advising to reconnect
// (3001) and refuses new streams with HTTP 503. It returns at once; the
// handlers return soon after. Register it with http.Server.RegisterOnShutdown:
// http.Server.Shutdown waits for running handlers, and a stream's handler
// otherwise runs until the node shuts down.
func (h *Handler) Drain() {
	h.drainOnce.Do(func() { close(h.quit) })
}

func (h *Handler) draining() bool {
	select {
	case <-h.quit:
		return true
	default:
		return false
	}
}

// request is what a stream request asks for.
type request struct {
	channels []string // without duplicates, in the order given
	token    string
	name     string
	history  int
	// joinLeave asks for the join and leave pushes of the channels
	// (join_leave=1), where their namespaces allow them.
	joinLeave bool
	since     map[string]protocol.StreamPosition // from Last-Event-ID
}

// ServeHTTP serves one event stream: it checks the request (answering HTTP
// errors with a JSON body, see docs/protocol.md), subscribes the channels,
// and writes events until the stream ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !origin.Allowed(r, h.opts.AllowedOrigins, h.opts.PublicURL) {
		h.log.Debug("sse origin refused", "origin", r.Header.Get("Origin"), "host", r.Host)
		writeError(w, http.StatusForbidden, protocol.ErrPermissionDenied.WithMessage("origin not allowed"))
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	}
	cfg := h.node.Config()
	req, err := h.parse(r, cfg.MaxChannels)
	if err != nil {
		h.refuse(w, err)
		return
	}
	if err := h.admit(); err != nil {
		refuseFull(w, err)
		return
	}
	s := newStream(w, cfg.WriteTimeout, h.opts.Retry, newPositions(req.channels, req.since), h.node.OutboxOptions())
	s.wire = h.node.WireBytes("sse", false)
	client, err := h.node.NewClientWith(s.out, hub.FormatProtocol,
		redcast.ClientOptions{Header: h.node.ForwardedHeaders(r.Header), Transport: "sse"})
	if err != nil {
		s.refuse()
		refuseFull(w, err)
		return
	}
	defer client.Closed()
	if err := h.start(client, s, req); err != nil {
		s.refuse()
		h.refuse(w, err)
		return
	}
	h.log.Debug("sse client connected", "client", client.ID(), "remote", r.RemoteAddr, "channels", len(req.channels))
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s.begin()
	s.run(r.Context(), cfg.PingInterval, h.quit, client.Disconnect)
}

// admit reports whether a new stream may start: not once the handler
// drains, and as the node admits connections (Node.Admit).
func (h *Handler) admit() error {
	if h.draining() {
		return redcast.ErrDraining
	}
	return h.node.Admit()
}

// refuseFull answers a stream the node does not admit (err: ErrDraining
// or ErrConnectionLimit) with 503 and error 109: another node may take it.
func refuseFull(w http.ResponseWriter, err error) {
	why := "connection limit reached"
	if errors.Is(err, redcast.ErrDraining) {
		why = "server shutting down"
	}
	writeError(w, http.StatusServiceUnavailable, protocol.ErrLimitExceeded.WithMessage("%s: try another node", why))
}

// start connects the client, checks every channel and subscribes them, so
// that a refusal is an HTTP error before any subscription. Each
// subscription's result is queued as it goes live, ahead of its live
// publications.
func (h *Handler) start(client *redcast.Client, s *stream, req *request) error {
	res, err := client.Connect(protocol.ConnectParams{Token: req.token, Name: req.name})
	if err != nil {
		return err
	}
	for _, ch := range req.channels {
		if err := client.CheckSubscribe(ch); err != nil {
			return err
		}
	}
	if !s.push(connectMessage(res)) {
		client.Disconnect(protocol.DisconnectSlowConsumer)
	}
	client.ConnectReplied()
	for _, ch := range req.channels {
		if s.out.Closing() {
			return nil // the stream ends with its disconnect event
		}
		var since *protocol.StreamPosition
		if pos, ok := req.since[ch]; ok {
			since = &pos
		}
		err := client.SubscribeWhole(protocol.SubscribeParams{Channel: ch, Since: since, History: req.history, JoinLeave: req.joinLeave},
			func(res *protocol.SubscribeResult) {
				if !s.push(subscribeMessage(ch, since, res)) {
					client.Disconnect(protocol.DisconnectSlowConsumer)
				}
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// parse reads a stream request: channel (repeated, at most maxChannels),
// token or Authorization: Bearer, name, history, and Last-Event-ID (or
// the lastEventId parameter, for a new EventSource that continues an old
// one). A malformed id is not an error: the stream then recovers nothing,
// and says so in its subscribe events.
func (h *Handler) parse(r *http.Request, maxChannels int) (*request, error) {
	q := r.URL.Query()
	req := &request{name: q.Get("name"), token: q.Get("token")}
	seen := make(map[string]bool)
	for _, ch := range q["channel"] {
		if !seen[ch] {
			seen[ch] = true
			req.channels = append(req.channels, ch)
		}
	}
	switch {
	case len(req.channels) == 0:
		return nil, protocol.ErrBadRequest.WithMessage("no channel: add channel=NAME to the URL")
	case len(req.channels) > maxChannels:
		return nil, protocol.ErrLimitExceeded.WithMessage("%d channels: at most %d per connection", len(req.channels), maxChannels)
	}
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return nil, protocol.ErrUnauthorized.WithMessage("Authorization must be Bearer TOKEN")
		}
		req.token = tok
	}
	if v := q.Get("history"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > redcast.MaxHistoryLimit {
			return nil, protocol.ErrBadRequest.WithMessage("history must be between 0 and %d", redcast.MaxHistoryLimit)
		}
		req.history = n
	}
	switch v := q.Get("join_leave"); v {
	case "", "0":
	case "1":
		req.joinLeave = true
	default:
		return nil, protocol.ErrBadRequest.WithMessage("join_leave must be 1 or 0, not %q", v)
	}
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = q.Get("lastEventId")
	}
	if id != "" {
		byKey, err := decodeID(id)
		if err != nil {
			h.log.Debug("sse: ignoring a malformed Last-Event-ID", "remote", r.RemoteAddr, "len", len(id))
		}
		req.since = sinceOf(req.channels, byKey)
	}
	return req, nil
}

// refuse answers a refused request with the HTTP status that fits err
// (see statusOf).
func (h *Handler) refuse(w http.ResponseWriter, err error) {
	if d, ok := errors.AsType[protocol.Disconnect](err); ok {
		// The backend (a proxy) closed the stream before it began: its
		// code and reason, as a refusal.
		writeError(w, http.StatusForbidden, &protocol.Error{Code: uint32(d.Code), Message: d.Reason})
		return
	}
	status, perr := statusOf(err)
	if status == http.StatusInternalServerError {
		h.log.Error("sse request failed", "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="redcast"`)
	}
	writeError(w, status, perr)
}

// statusOf maps an error of a stream request to its protocol error and
// HTTP status (see redcast.ProtocolError and redcast.HTTPStatus).
func statusOf(err error) (int, *protocol.Error) {
	perr, _ := redcast.ProtocolError(err)
	return redcast.HTTPStatus(perr), perr
}

// writeError answers status with {"error": {"code": …, "message": …}}.
func writeError(w http.ResponseWriter, status int, e *protocol.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(encode(struct {
		Error *protocol.Error `json:"error"`
	}{e}), '\n'))
}
