package pusher

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/transport/websocket"
	"github.com/redcast/redcast/webhook"
)

// Handler serves Pusher's WebSocket endpoint, /app/{key}, on a node,
// through the node's WebSocket handler. It is safe for concurrent use.
type Handler struct {
	node  *redcast.Node
	ws    *websocket.Handler
	cfg   Config
	log   *slog.Logger
	byKey map[string]*App
	// byPresenceNS are the apps by their presence namespace.
	byPresenceNS map[string]*App
	// conns counts the node's connections of each app with
	// MaxConnections, which the node announces to the others
	// (redcast.Node.ReportCount, as connectionsCount(app)).
	conns map[*App]*atomic.Int64

	// mu guards sessions, the open connections (which Drain closes). No
	// lock is taken under it.
	mu       sync.Mutex
	sessions map[*session]struct{}
	// webhooks are the apps' webhook targets, by app ID (see webhook.go).
	webhooks map[string]*webhook.Target
}

// NewHandler returns the handler of cfg's apps on node, whose WebSockets
// ws serves. Each app's namespaces must be configured on the node (see
// WithNamespaces); errors wrap ErrConfig. It makes itself the node's
// listener of users entering and leaving (redcast.Node.OnUserPresence):
// one Handler per node.
func NewHandler(node *redcast.Node, ws *websocket.Handler, cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(node.Config().Namespaces); err != nil {
		return nil, err
	}
	h := &Handler{node: node, ws: ws, cfg: cfg, log: cfg.Logger, byKey: make(map[string]*App), byPresenceNS: make(map[string]*App), conns: make(map[*App]*atomic.Int64), sessions: make(map[*session]struct{})}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for i := range h.cfg.Apps {
		h.byKey[h.cfg.Apps[i].Key] = &h.cfg.Apps[i]
		h.byPresenceNS[h.cfg.Apps[i].PresenceNamespace] = &h.cfg.Apps[i]
		count := new(atomic.Int64)
		h.conns[&h.cfg.Apps[i]] = count
		if h.cfg.Apps[i].MaxConnections > 0 {
			node.ReportCount(connectionsCount(&h.cfg.Apps[i]), func() int { return int(count.Load()) })
		}
	}
	node.OnUserPresence(h.userPresence)
	if len(h.cfg.Apps) > 0 {
		node.ReserveUsers(userPrefix) // the apps' users (app.go scopedUser)
	}
	if err := h.startWebhooks(); err != nil {
		return nil, err
	}
	return h, nil
}

// connectionsCount names the count of an app's connections the nodes
// announce.
func connectionsCount(app *App) string { return "pusher:" + app.ID }

// Supported protocol versions: pusher-js speaks 7.
const (
	minProtocol = 5
	maxProtocol = 7
)

// ServeHTTP serves a WebSocket at /app/{key} (the request's path value
// "key"). The connection is upgraded whatever the key and version, then
// refused as Pusher does (pusher:error and a close code in 4000-4099, which
// clients do not retry) when the app is unknown or the protocol version is
// not supported.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := &dialect{h: h, app: h.byKey[r.PathValue("key")]}
	switch v := r.URL.Query().Get("protocol"); {
	case d.app == nil:
		d.refuse = &protocol.Disconnect{Code: codeUnknownApp, Reason: fmt.Sprintf("App key %.40q not in this cluster", r.PathValue("key"))}
	case v == "":
		d.refuse = &protocol.Disconnect{Code: codeNoProtocol, Reason: "No protocol version supplied"}
	default:
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			d.refuse = &protocol.Disconnect{Code: codeBadVersion, Reason: "Invalid version string format"}
		case n < minProtocol || n > maxProtocol:
			d.refuse = &protocol.Disconnect{Code: codeUnsupportedProtocol, Reason: fmt.Sprintf("Unsupported protocol version %d", n)}
		}
	}
	h.ws.ServeDialect(w, r, d)
}

// dialect is the websocket.Dialect of one connection request.
type dialect struct {
	h   *Handler
	app *App // nil for an unknown key
	// refuse, when set, ends the connection at once.
	refuse *protocol.Disconnect
}

func (d *dialect) Format() hub.Format { return format }

func (d *dialect) Open() (redcast.ClientOptions, func(*redcast.Client, *outbox.Outbox) (websocket.Session, error)) {
	id := newSocketID()
	return redcast.ClientOptions{ID: id}, func(c *redcast.Client, out *outbox.Outbox) (websocket.Session, error) {
		if d.refuse != nil {
			return nil, *d.refuse
		}
		// The app's connections of the cluster: this node's now, the
		// others' as they last announced them.
		count := d.h.conns[d.app]
		if max := d.app.MaxConnections; max > 0 && count.Add(1)+int64(d.h.node.OtherNodesCount(connectionsCount(d.app))) > int64(max) {
			count.Add(-1)
			return nil, protocol.Disconnect{Code: codeOverQuota, Reason: fmt.Sprintf("Application is over connection quota (%d connections)", max)}
		}
		s := newSession(d.h, d.app, c, out)
		s.counted = d.app.MaxConnections > 0
		d.h.track(s)
		s.established()
		return s, nil
	}
}

func (d *dialect) Close(disc protocol.Disconnect) ([]byte, uint16, string) {
	code, reason := closeCode(disc)
	msg := errorMessage(int(code), reason)
	if len(reason) > maxCloseReason {
		reason = strings.ToValidUTF8(reason[:maxCloseReason], "")
	}
	return msg, code, reason
}

// maxCloseReason is the most bytes of reason a close frame holds.
const maxCloseReason = 123

// newSocketID returns a new socket id: two random numbers joined by a
// dot, the form Pusher's libraries check.
func newSocketID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	return fmt.Sprintf("%d.%d", binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint32(b[4:]))
}
