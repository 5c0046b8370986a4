package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
)

// Options configure the API handler.
type Options struct {
	// Key is the API key clients must send. It must not be empty:
	// NewHandler refuses to build an API open to anyone.
	Key string
	// MaxBodySize bounds a request body in bytes. Default 1 MiB.
	MaxBodySize int64
	// MaxBroadcastChannels bounds the channels of one broadcast. Default 1000.
	MaxBroadcastChannels int
	// Timeout bounds the work of one request. Default 10s.
	Timeout time.Duration
	// Logger receives errors the caller is not told the details of; nil
	// discards them.
	Logger *slog.Logger
}

// Handler serves the API. Mount it at /api/.
type Handler struct {
	node *redcast.Node
	opts Options
	key  [sha256.Size]byte
	mux  *http.ServeMux
}

// ErrNoKey is returned by NewHandler when Options.Key is empty.
var ErrNoKey = errors.New("api: an API key is required")

// broadcastWorkers bounds the publications of one broadcast in flight.
const broadcastWorkers = 16

// NewHandler returns the API of node.
func NewHandler(node *redcast.Node, opts Options) (*Handler, error) {
	if opts.Key == "" {
		return nil, ErrNoKey
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = 1 << 20
	}
	if opts.MaxBroadcastChannels <= 0 {
		opts.MaxBroadcastChannels = 1000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{node: node, opts: opts, key: sha256.Sum256([]byte(opts.Key)), mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /api/publish", endpoint(h, h.publish))
	h.mux.HandleFunc("POST /api/broadcast", endpoint(h, h.broadcast))
	h.mux.HandleFunc("POST /api/history", endpoint(h, h.history))
	h.mux.HandleFunc("POST /api/presence", endpoint(h, h.presence))
	h.mux.HandleFunc("POST /api/channels", endpoint(h, h.channels))
	h.mux.HandleFunc("POST /api/disconnect", endpoint(h, h.disconnect))
	h.mux.HandleFunc("POST /api/unsubscribe", endpoint(h, h.unsubscribe))
	h.mux.HandleFunc("POST /api/info", endpoint(h, h.info))
	h.handleRevocations()
	return h, nil
}

// ServeHTTP implements http.Handler: it checks the key before anything else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", "apikey")
		writeJSON(w, http.StatusUnauthorized, errorBody{protocol.ErrUnauthorized})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the API key, comparing in constant
// time (on hashes, so that the key's length does not leak either).
func (h *Handler) authorized(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "apikey") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(sum[:], h.key[:]) == 1
}

type errorBody struct {
	Error *protocol.Error `json:"error"`
}

type resultBody struct {
	Result any `json:"result"`
}

// endpoint adapts a typed API call to an http.HandlerFunc: it decodes the
// body into Req (at most MaxBodySize bytes, unknown fields refused), runs
// call within the request timeout and writes the result or the error.
func endpoint[Req, Res any](h *Handler, call func(context.Context, *Req) (Res, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if err := h.decode(w, r, req); err != nil {
			h.writeError(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		defer cancel()
		res, err := call(ctx, req)
		if err != nil {
			h.writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resultBody{res})
	}
}

// errBodyTooLarge marks a body over MaxBodySize.
var errBodyTooLarge = errors.New("api: body too large")

func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodySize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return fmt.Errorf("%w: the limit is %d bytes", errBodyTooLarge, h.opts.MaxBodySize)
		}
		return protocol.ErrBadRequest.WithMessage("reading body: %v", err)
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return protocol.ErrBadRequest.WithMessage("body is not a valid request: %v", err)
	}
	if dec.More() {
		return protocol.ErrBadRequest.WithMessage("body has data after the request object")
	}
	return nil
}

// writeError answers with err: a protocol error as itself, anything else
// as an internal or unavailable error whose details go to the log only.
func (h *Handler) writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, errBodyTooLarge) {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{protocol.ErrDataTooLarge.WithMessage("%s", strings.TrimPrefix(err.Error(), "api: "))})
		return
	}
	perr := h.protocolError(err)
	status := redcast.HTTPStatus(perr)
	writeJSON(w, status, errorBody{perr})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":100,"message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Requests and results of the endpoints; docs/api.md shows each.

// PublishRequest is the body of /api/publish.
type PublishRequest struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	// IdempotencyKey makes the publish idempotent (see
	// redcast.PublishOptions).
	IdempotencyKey string `json:"idempotency_key"`
}

func (h *Handler) publish(ctx context.Context, req *PublishRequest) (protocol.StreamPosition, error) {
	return h.node.PublishWith(ctx, req.Channel, req.Data, redcast.PublishOptions{IdempotencyKey: req.IdempotencyKey})
}

// BroadcastRequest is the body of /api/broadcast: one data to many channels.
type BroadcastRequest struct {
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

// BroadcastResult holds one response per channel, in the request's order.
type BroadcastResult struct {
	Responses []BroadcastResponse `json:"responses"`
}

// BroadcastResponse is the outcome of one channel of a broadcast: its
// position, or its error.
type BroadcastResponse struct {
	Channel string                   `json:"channel"`
	Result  *protocol.StreamPosition `json:"result,omitempty"`
	Error   *protocol.Error          `json:"error,omitempty"`
}

func (h *Handler) broadcast(ctx context.Context, req *BroadcastRequest) (*BroadcastResult, error) {
	switch n := len(req.Channels); {
	case n == 0:
		return nil, protocol.ErrBadRequest.WithMessage("broadcast needs channels")
	case n > h.opts.MaxBroadcastChannels:
		return nil, protocol.ErrLimitExceeded.WithMessage("at most %d channels per broadcast", h.opts.MaxBroadcastChannels)
	}
	res := &BroadcastResult{Responses: make([]BroadcastResponse, len(req.Channels))}
	sem := make(chan struct{}, broadcastWorkers)
	var wg sync.WaitGroup
	for i, ch := range req.Channels {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := &res.Responses[i]
			r.Channel = ch
			pos, err := h.node.Publish(ctx, ch, req.Data)
			if err != nil {
				r.Error = h.protocolError(err)
				return
			}
			r.Result = &pos
		})
	}
	wg.Wait()
	return res, nil
}

// protocolError returns err as the protocol error a caller is shown,
// logging what the caller learns nothing of.
func (h *Handler) protocolError(err error) *protocol.Error {
	perr, internal := redcast.ProtocolError(err)
	switch {
	case internal:
		h.opts.Logger.Error("api: request failed", "err", err)
	case perr == protocol.ErrBrokerUnavailable && !errors.Is(err, perr):
		h.opts.Logger.Warn("api: broker unavailable", "err", err)
	}
	return perr
}

// HistoryRequest is the body of /api/history: the latest Limit
// publications, or those after Since.
type HistoryRequest struct {
	Channel string                   `json:"channel"`
	Limit   int                      `json:"limit"`
	Since   *protocol.StreamPosition `json:"since"`
}

func (h *Handler) history(ctx context.Context, req *HistoryRequest) (*protocol.HistoryResult, error) {
	return h.node.History(ctx, req.Channel, req.Limit, req.Since)
}

// ChannelRequest is the body of /api/presence.
type ChannelRequest struct {
	Channel string `json:"channel"`
}

func (h *Handler) presence(ctx context.Context, req *ChannelRequest) (*protocol.PresenceResult, error) {
	clients, err := h.node.Presence(ctx, req.Channel)
	if err != nil {
		return nil, err
	}
	return &protocol.PresenceResult{Clients: clients}, nil
}

// ChannelsRequest is the body of /api/channels; Prefix keeps only the
// channels that start with it.
type ChannelsRequest struct {
	Prefix string `json:"prefix"`
}

// ChannelsResult lists active channels, sorted.
type ChannelsResult struct {
	Channels []string `json:"channels"`
}

func (h *Handler) channels(ctx context.Context, req *ChannelsRequest) (*ChannelsResult, error) {
	chans, err := h.node.Channels(ctx)
	if err != nil {
		return nil, err
	}
	out := chans[:0]
	for _, ch := range chans {
		if strings.HasPrefix(ch, req.Prefix) {
			out = append(out, ch)
		}
	}
	return &ChannelsResult{Channels: out}, nil
}

// DisconnectRequest is the body of /api/disconnect. With Reconnect the
// user's connections are told to reconnect (code 3007), else not to
// (3504).
type DisconnectRequest struct {
	User      string `json:"user"`
	Reconnect bool   `json:"reconnect"`
}

type empty struct{}

func (h *Handler) disconnect(ctx context.Context, req *DisconnectRequest) (empty, error) {
	d := protocol.DisconnectForced
	if req.Reconnect {
		d = protocol.DisconnectForcedReconnect
	}
	return empty{}, h.node.DisconnectUser(ctx, req.User, d)
}

// UnsubscribeRequest is the body of /api/unsubscribe.
type UnsubscribeRequest struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
}

func (h *Handler) unsubscribe(ctx context.Context, req *UnsubscribeRequest) (empty, error) {
	return empty{}, h.node.UnsubscribeUser(ctx, req.User, req.Channel)
}

// InfoResult lists the nodes serving the same channels.
type InfoResult struct {
	Nodes []redcast.NodeInfo `json:"nodes"`
}

func (h *Handler) info(context.Context, *empty) (*InfoResult, error) {
	return &InfoResult{Nodes: h.node.Nodes()}, nil
}
