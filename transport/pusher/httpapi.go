package pusher

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
)

// This file is Pusher's HTTP API for an app's backend, with Pusher's
// request signing.

// Limits of the HTTP API, Pusher's.
const (
	maxEventChannels = 100
	// maxBatchEvents is how many events one batch_events request may hold.
	maxBatchEvents = 10
	maxAPIBody     = 256 << 10
	// maxClockSkew is how far auth_timestamp may be from the server's
	// clock.
	maxClockSkew = 600 * time.Second
)

// API returns the HTTP API handler: mount it at /apps/. Today it serves
// POST /apps/{id}/events, batch_events and
// users/{user}/terminate_connections, and GET /apps/{id}/channels,
// channels/{channel} and channels/{channel}/users.
func (h *Handler) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apps/{id}/events", h.serveEvents)
	mux.HandleFunc("POST /apps/{id}/batch_events", h.serveBatchEvents)
	mux.HandleFunc("POST /apps/{id}/users/{user}/terminate_connections", h.serveTerminate)
	mux.HandleFunc("GET /apps/{id}/channels", h.serveChannels)
	mux.HandleFunc("GET /apps/{id}/channels/{channel}", h.serveChannel)
	mux.HandleFunc("GET /apps/{id}/channels/{channel}/users", h.serveUsers)
	return mux
}

// failed answers a request whose work failed with err, as the shared
// mapping shows it (redcast.ProtocolError, redcast.HTTPStatus), logging
// what the caller learns nothing of.
func (h *Handler) failed(w http.ResponseWriter, what string, err error) {
	perr, internal := redcast.ProtocolError(err)
	if internal {
		h.log.Error("pusher api: "+what+" failed", "err", err)
	}
	apiError(w, redcast.HTTPStatus(perr), "%s failed: %s", what, perr.Message)
}

// readSigned reads a request's body (at most maxAPIBody) and verifies its
// signature, answering the request itself when either fails (app nil).
func (h *Handler) readSigned(w http.ResponseWriter, r *http.Request) (*App, []byte) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		apiError(w, http.StatusRequestEntityTooLarge, "Request body larger than %d bytes", maxAPIBody)
		return nil, nil
	} else if err != nil {
		apiError(w, http.StatusBadRequest, "Reading the request body failed: %s", err)
		return nil, nil
	}
	app, err := h.verify(r, body, time.Now())
	if err != nil {
		apiError(w, http.StatusUnauthorized, "%s", strings.TrimPrefix(err.Error(), errUnauthorized.Error()+": "))
		return nil, nil
	}
	return app, body
}

// apiError answers a request with Pusher's status and a text message.
func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, format+"\n", args...)
}

// errUnauthorized is wrapped by the errors of verify: a 401.
var errUnauthorized = errors.New("unauthorized")

// verify checks a request's signature (Pusher's auth_key, auth_timestamp,
// auth_version, body_md5 and auth_signature query parameters) for the app
// of the path, and returns the app.
func (h *Handler) verify(r *http.Request, body []byte, now time.Time) (*App, error) {
	var app *App
	for i := range h.cfg.Apps {
		if h.cfg.Apps[i].ID == r.PathValue("id") {
			app = &h.cfg.Apps[i]
		}
	}
	q := r.URL.Query()
	switch {
	case app == nil:
		return nil, fmt.Errorf("%w: unknown app %q", errUnauthorized, r.PathValue("id"))
	case q.Get("auth_key") != app.Key:
		return nil, fmt.Errorf("%w: unknown auth_key", errUnauthorized)
	case q.Get("auth_version") != "1.0":
		return nil, fmt.Errorf("%w: auth_version must be 1.0", errUnauthorized)
	}
	ts, err := strconv.ParseInt(q.Get("auth_timestamp"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: auth_timestamp must be a Unix time in seconds", errUnauthorized)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxClockSkew || d < -maxClockSkew {
		return nil, fmt.Errorf("%w: timestamp expired: given %d, now %d (at most %d s apart)", errUnauthorized, ts, now.Unix(), int(maxClockSkew.Seconds()))
	}
	if len(body) > 0 {
		sum := md5.Sum(body)
		if q.Get("body_md5") != hex.EncodeToString(sum[:]) {
			return nil, fmt.Errorf("%w: body_md5 does not match the body", errUnauthorized)
		}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "auth_signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var params strings.Builder
	for i, k := range keys {
		if i > 0 {
			params.WriteByte('&')
		}
		params.WriteString(strings.ToLower(k) + "=" + q.Get(k))
	}
	toSign := r.Method + "\n" + r.URL.Path + "\n" + params.String()
	got, err := hex.DecodeString(q.Get("auth_signature"))
	if err != nil || !hmac.Equal(got, sign(app.Secret, toSign)) {
		return nil, fmt.Errorf("%w: invalid signature: expected the hex HMAC-SHA256 of %q", errUnauthorized, toSign)
	}
	return app, nil
}

// eventRequest is the body of POST /apps/{id}/events.
type eventRequest struct {
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channels []string        `json:"channels"`
	Channel  string          `json:"channel"`
	SocketID string          `json:"socket_id"`
	// Info asks for counts of the channels in the reply.
	Info string `json:"info"`
}

// socketIDPattern is the form of a socket id.
var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// serveEvents publishes one event to up to 100 channels of the app. The
// socket of socket_id, if any, does not receive it.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	app, body := h.readSigned(w, r)
	if app == nil {
		return
	}
	var req eventRequest
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "Body is not a JSON event")
		return
	}
	if req.Channel != "" {
		req.Channels = append(req.Channels, req.Channel)
	}
	if status, msg := h.checkEvent(app, req); status != 0 {
		apiError(w, status, "%s", msg)
		return
	}
	if !h.publish(w, r, app, req) {
		return
	}
	userCount, subCount, _ := parseInfo(req.Info)
	infos, ok := h.eventInfo(w, r, app, req.Channels, userCount, subCount)
	if !ok {
		return
	}
	if req.Info == "" {
		infos = nil
	}
	writeJSON(w, struct {
		Channels map[string]channelInfo `json:"channels,omitempty"`
	}{infos})
}

// publish publishes a validated event to its channels, answering the
// request itself and returning false when publishing fails.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request, app *App, req eventRequest) bool {
	data := publicationData(req.Name, req.Data, "")
	for _, ch := range req.Channels {
		if _, err := h.node.PublishExcept(r.Context(), app.channel(ch), data, req.SocketID); err != nil {
			h.failed(w, "Publishing to "+ch, err)
			return false
		}
	}
	return true
}

// serveBatchEvents publishes up to maxBatchEvents events, each to one
// channel. Every event is checked before any is published, so a refused
// batch publishes nothing.
func (h *Handler) serveBatchEvents(w http.ResponseWriter, r *http.Request) {
	app, body := h.readSigned(w, r)
	if app == nil {
		return
	}
	var req struct {
		Batch []eventRequest `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "Body is not a JSON batch of events")
		return
	}
	if len(req.Batch) == 0 || len(req.Batch) > maxBatchEvents {
		apiError(w, http.StatusBadRequest, "A batch holds 1 to %d events", maxBatchEvents)
		return
	}
	for i := range req.Batch {
		ev := &req.Batch[i]
		if ev.Channel == "" || len(ev.Channels) > 0 {
			apiError(w, http.StatusBadRequest, "Event %d of the batch: each event goes to one channel", i)
			return
		}
		ev.Channels = []string{ev.Channel}
		if status, msg := h.checkEvent(app, *ev); status != 0 {
			apiError(w, status, "Event %d of the batch: %s", i, msg)
			return
		}
	}
	withInfo := false
	for _, ev := range req.Batch {
		if !h.publish(w, r, app, ev) {
			return
		}
		withInfo = withInfo || ev.Info != ""
	}
	var infos []channelInfo
	for _, ev := range req.Batch {
		if !withInfo {
			break
		}
		userCount, subCount, _ := parseInfo(ev.Info)
		info, ok := h.eventInfo(w, r, app, ev.Channels, userCount, subCount)
		if !ok {
			return
		}
		infos = append(infos, info[ev.Channel])
	}
	writeJSON(w, struct {
		Batch []channelInfo `json:"batch,omitempty"`
	}{infos})
}

// checkEvent validates an event of the HTTP API, returning Pusher's
// status and message when it is refused (status 0: valid).
func (h *Handler) checkEvent(app *App, req eventRequest) (int, string) {
	switch {
	case req.Name == "" || len(req.Name) > maxEventLength:
		return http.StatusBadRequest, fmt.Sprintf("Event name must be 1 to %d bytes", maxEventLength)
	case len(req.Channels) == 0 || len(req.Channels) > maxEventChannels:
		return http.StatusBadRequest, fmt.Sprintf("An event goes to 1 to %d channels", maxEventChannels)
	case len(req.Data) == 0:
		return http.StatusBadRequest, "Event needs data"
	case len(req.Data) > app.MaxEventSize:
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("Event data larger than %d bytes", app.MaxEventSize)
	case req.SocketID != "" && !socketIDPattern.MatchString(req.SocketID):
		return http.StatusBadRequest, "Invalid socket_id"
	}
	if _, _, bad := parseInfo(req.Info); bad != "" {
		return http.StatusBadRequest, bad
	}
	for _, ch := range req.Channels {
		if isServerToUser(ch) && len(ch) <= maxChannelLength {
			if err := app.validateServerToUser(ch); err != nil {
				return http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadMessage.Error()+": ")
			}
			continue
		}
		if err := validateChannel(ch); err != nil {
			return http.StatusBadRequest, "Invalid channel " + strconv.Quote(ch)
		}
	}
	return 0, ""
}

// serveTerminate closes every connection of the app's user, on every node,
// with 4009 (clients do not reconnect). A connection is the user's once it
// signed in or joined a presence channel as that user; users are the
// app's (App.scopedUser), not other apps' nor redcast clients'.
func (h *Handler) serveTerminate(w http.ResponseWriter, r *http.Request) {
	app, _ := h.readSigned(w, r)
	if app == nil {
		return
	}
	user := r.PathValue("user")
	if user == "" || len(user) > maxUserIDLength {
		apiError(w, http.StatusBadRequest, "User id must be 1 to %d bytes", maxUserIDLength)
		return
	}
	if err := h.node.DisconnectUser(r.Context(), app.scopedUser(user), protocol.DisconnectForced); err != nil {
		h.failed(w, "Terminating the connections of "+user, err)
		return
	}
	writeJSON(w, struct{}{})
}
