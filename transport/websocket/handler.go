package websocket

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/origin"
	"github.com/redcast/redcast/internal/wsdeflate"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// PlainNamespace is the namespace of plain-mode rooms: /rooms/R is channel
// "chat:R", the same channel the chat page shows as room R.
const PlainNamespace = "chat"

// Handler serves WebSocket connections of one node. Where it can (Linux,
// connections without TLS) it parks the sockets of idle connections with
// a poller goroutine of its own, started with the first: Close stops it.
type Handler struct {
	node *redcast.Node
	log  *slog.Logger
	opts Options
	// poller waits for the peers of idle connections (see readLoop).
	poller poller
	// deflate compresses for the connections that negotiated
	// permessage-deflate; nil when Options.Compression is off.
	deflate *wsdeflate.Compressor
}

// Options configure a Handler. The zero value means the defaults.
type Options struct {
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open WebSockets besides the server's own origin; "*" allows any.
	// Requests without an Origin header (non-browser clients) are always
	// allowed. Default: same origin only.
	AllowedOrigins []string
	// PublicURL is the server's public origin (scheme://host[:port]).
	// When set, it is the server's own origin, whatever Host a request
	// carries; empty: the request's scheme and Host are.
	PublicURL string
	// Logger receives connection logs; nil discards them.
	Logger *slog.Logger
	// Compression configures permessage-deflate; off by default.
	Compression Compression
}

// Compression configures permessage-deflate (RFC 7692). When Enabled, a
// client that offers it gets it, with no context takeover either way:
// every message is compressed on its own, so that a broadcast is
// compressed once for all the connections that read it, whatever their
// number.
type Compression struct {
	Enabled bool
	// MinSize is the length of a message (a line of the protocol) from
	// which it is compressed; shorter ones go out plain, joined with their
	// neighbours as usual. 0: wsdeflate.DefaultMinSize (256); negative:
	// every message.
	MinSize int
	// Level is the flate level, 1 (fastest, the default) to 9.
	Level int
}

// NewHandler returns a Handler for node.
func NewHandler(node *redcast.Node, opts Options) *Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{node: node, log: log, opts: opts}
	if c := opts.Compression; c.Enabled {
		h.deflate = &wsdeflate.Compressor{Level: c.Level, MinSize: c.MinSize}
	}
	h.poller.init(h.resume, log)
	return h
}

// Close stops the goroutine that waits for the peers of idle connections,
// and hands each connection still parked back to a read loop of its own:
// call it once the node is shut down (it does not close connections).
// Connections served after Close wait for their peers on a goroutine each.
// It is safe to call more than once.
func (h *Handler) Close() error { return h.poller.close() }

// originAllowed checks a browser's Origin against the request's own host
// and the allow-list (see package origin).
func (h *Handler) originAllowed(r *http.Request) bool {
	if origin.Allowed(r, h.opts.AllowedOrigins, h.opts.PublicURL) {
		return true
	}
	h.log.Debug("websocket origin refused", "origin", r.Header.Get("Origin"), "host", r.Host)
	return false
}

// Protocol serves the full protocol (mount it at /connection/websocket).
func (h *Handler) Protocol() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, hub.FormatProtocol, &kind{})
	})
}

// Plain serves plain mode (mount it at /rooms/{room}): the room is taken
// from the request's path value "room".
func (h *Handler) Plain() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		room := r.PathValue("room")
		ch := PlainNamespace + string(protocol.NamespaceSeparator) + room
		if strings.ContainsRune(room, protocol.NamespaceSeparator) || protocol.ValidateChannel(ch) != nil {
			http.Error(w, "invalid room name: use 1 to 250 of A-Z a-z 0-9 _ - . @ / = , # ~", http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		name := q.Get("name")
		if len(name) > protocol.MaxNameLength {
			http.Error(w, "name longer than 64 bytes", http.StatusBadRequest)
			return
		}
		if err := h.node.CheckPlainRoom(ch); err != nil {
			status := http.StatusForbidden
			if errors.Is(err, protocol.ErrUnauthorized) {
				status = http.StatusUnauthorized
			}
			http.Error(w, err.Error(), status)
			return
		}
		h.serve(w, r, hub.FormatPlain, &kind{room: &plainRoom{channel: ch, name: name, echo: q.Get("echo") == "1"}})
	})
}

type plainRoom struct {
	channel string
	name    string
	echo    bool
}

// kind is what a connection speaks: redcast's protocol (both nil), plain
// mode in a room, or a dialect.
type kind struct {
	room    *plainRoom
	dialect Dialect
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, format hub.Format, k *kind) {
	cfg := h.node.Config()
	if !h.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if err := h.node.Admit(); err != nil {
		// Before the upgrade, so that a balancer (nginx's
		// proxy_next_upstream http_503) passes the client to another node.
		msg := "connection limit reached, try another node"
		if errors.Is(err, redcast.ErrDraining) {
			msg = "node shutting down, try another node"
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	var (
		up  ws.HTTPUpgrader
		neg wsdeflate.Negotiation
	)
	if h.deflate != nil {
		up.Negotiate = neg.Negotiate
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		h.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	// Keep what the client sent after its request (frames it did not wait
	// to send), and nothing else of net/http's: the connection is served
	// by a goroutine of its own, and this handler returns so that net/http
	// releases its buffers and request.
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		pre = slices.Clone(b)
	}
	c := newConn(nc, format, limits{writeTimeout: cfg.WriteTimeout, pingInterval: cfg.PingInterval}, h.node.OutboxOptions())
	c.dialect = k.dialect
	if neg.Accepted() {
		c.deflate = h.deflate
	}
	c.wire = h.node.WireBytes("websocket", c.deflate != nil)
	rd := newReader(c, pre)
	rd.maxSize = cfg.MaxFrameSize
	rd.idle = cfg.PingInterval + cfg.PongTimeout
	rd.tooLarge, rd.binary = protocol.DisconnectFrameTooLarge, protocol.DisconnectBadFrame
	if k.room != nil {
		rd.maxSize = cfg.MaxDataSize
		rd.tooLarge, rd.binary = protocol.DisconnectPlainTooLarge, protocol.DisconnectPlainBinary
	}
	// The headers the backend is sent with this client's calls, captured
	// now: the request is not kept.
	go h.run(c, rd, format, k, r.RemoteAddr, h.node.ForwardedHeaders(r.Header))
}

// session is a served connection: what its read loop needs, whichever
// goroutine runs it.
type session struct {
	client *redcast.Client
	// frames handles the text frames: the client, or the session of a
	// dialect (nil in plain mode).
	frames Session
	c      *conn
	rd     *reader
	room   *plainRoom
	// park is the session's state in the poller.
	park parking
	// parkedAt (unix nanoseconds) is when the read loop last parked, and
	// quick counts the times in a row the peer sent again soon after
	// (within readLinger): from the second on, the read loop lingers
	// before it parks again. (A client that connects and subscribes wakes
	// it once.) Both belong to the read loop.
	parkedAt int64
	quick    uint8
}

// run serves an upgraded connection until it closes.
func (h *Handler) run(c *conn, rd *reader, format hub.Format, k *kind, remote string, header http.Header) {
	room := k.room
	s := &session{c: c, rd: rd, room: room}
	// Before the client exists, and with it whoever could close it.
	c.wakeReader = func() { h.poller.unpark(s) }
	var (
		opts redcast.ClientOptions
		open func(*redcast.Client, *outbox.Outbox) (Session, error)
	)
	if k.dialect != nil {
		opts, open = k.dialect.Open()
	}
	opts.Header = header
	if c.deflate != nil {
		opts.Framer = c.deflate
	}
	client, err := h.node.NewClientWith(c.out, format, opts)
	if err != nil {
		d := protocol.DisconnectShutdown
		if errors.Is(err, redcast.ErrConnectionLimit) {
			d = protocol.DisconnectConnectionLimit
		}
		c.out.Close(d)
		rd.drain()
		_ = c.nc.Close()
		return
	}
	h.log.Debug("client connected", "client", client.ID(), "remote", remote, "plain", room != nil)
	c.startPinging()
	s.client = client
	if room == nil {
		s.frames = client
	}
	if open != nil {
		if s.frames, err = open(client, c.out); err != nil {
			d := protocol.DisconnectForced
			errors.As(err, &d)
			client.Disconnect(d)
			h.end(s)
			return
		}
	}
	if room != nil {
		if err := client.JoinRoom(room.channel, room.name, room.echo); err != nil {
			h.log.Warn("plain client could not join", "channel", room.channel, "err", err)
			c.out.Close(protocol.DisconnectPlainInternal)
			h.end(s)
			return
		}
	}
	h.readLoop(s, false)
}

// readLoop hands the client's messages to its session until the connection
// closes, then releases it. An idle connection should hold no goroutine:
// when a read loop that handled frames would wait for the peer, it parks
// the socket in the poller and returns (a read loop of a client that sends
// often first waits readLinger on its goroutine, see conn.linger), and the
// poller starts a fresh read loop once the peer sends (or hangs up), or
// the connection closes, or its read deadline passes (see conn.sendPing).
// Where the socket cannot be parked (TLS, systems other than Linux), the
// read loop continues on a fresh goroutine instead, which waits for the next frame with as little
// stack as it can: handling commands grows a goroutine's stack, and an
// idle connection should not keep that.
func (h *Handler) readLoop(s *session, fresh bool) {
	c, rd := s.c, s.rd
	used := !fresh
	if fresh && s.parkedAt != 0 {
		// Woken soon after it parked, again: a client that sends often,
		// which lingers from now on rather than park after every frame.
		if time.Now().UnixNano()-s.parkedAt < int64(readLinger) {
			s.quick = min(s.quick+1, 2)
		} else {
			s.quick = 0
		}
	}
	// handled is true once this read loop handled a frame: only then does
	// a park count for quick (the first, before the peer sent anything,
	// does not).
	handled := false
	// pending is true while the client holds replies (and publishes) of
	// frames it handled, for Client.Flush: called once no further frame
	// is buffered, and before the read loop ends.
	pending := false
	flush := func() {
		if pending {
			s.frames.Flush()
			pending = false
		}
	}
	for {
		var err error
		if used && rd.waiting() {
			rd.park()
			_ = c.extendReadDeadline(rd.idle) // here, where the stack is grown already
			if s.quick < 2 {
				err = errLingerOver
			} else {
				err = c.linger(rd)
			}
			if errors.Is(err, errLingerOver) {
				s.parkedAt = 0
				if handled {
					s.parkedAt = time.Now().UnixNano()
				}
				if !h.poller.park(s) {
					h.resume(s)
				}
				return
			}
		}
		var msg []byte
		if fresh && err == nil {
			err, fresh = rd.wait(), false
		}
		if err == nil {
			msg, err = rd.next()
		}
		if err != nil && !errors.Is(err, errDrained) {
			flush() // before the close, so that the replies go out
			switch {
			case errors.Is(err, errViolation):
				c.out.Close(rd.violated)
			case errors.Is(err, errClosedByPeer):
				c.out.Close(peerClosed)
			default:
				// The socket failed or the peer went quiet past the ping timeout.
				c.out.Close(protocol.DisconnectNoPong)
			}
			break
		}
		if c.out.Closing() {
			break
		}
		used = true
		if err != nil {
			continue // errDrained: control frames only, nothing for the client
		}
		handled = true
		if s.room == nil {
			s.frames.HandleFrame(msg)
			pending = true
			if !rd.frameBuffered() {
				flush()
			}
		} else if err := s.client.PublishText(s.room.channel, msg); err != nil {
			h.log.Warn("plain publish failed", "channel", s.room.channel, "client", s.client.ID(), "err", err)
			c.out.Close(protocol.DisconnectPlainInternal)
			break
		}
	}
	flush()
	h.end(s)
}

// resume continues the read loop of s on a fresh goroutine, which first
// waits for the peer.
func (h *Handler) resume(s *session) { go h.readLoop(s, true) }

// end releases a connection whose read loop ended (it is closing). The
// socket is closed before the client is released, so that a node that saw
// all its clients go has no connection left behind.
func (h *Handler) end(s *session) {
	s.rd.drain()
	_ = s.c.nc.Close()
	s.client.Closed()
	if c, ok := s.frames.(interface{ Closed() }); ok && s.frames != Session(s.client) {
		c.Closed()
	}
}
