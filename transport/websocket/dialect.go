package websocket

import (
	"net/http"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// Dialect is a protocol other than redcast's own spoken over the handler's
// WebSockets (Pusher's: package transport/pusher). Its connections are the
// node's clients like any other, upgraded, read, parked and pinged by this
// package and written by their outbox; the dialect only says what their
// frames mean and how a disconnect is told. Its methods are called from any
// goroutine.
type Dialect interface {
	// Format is the hub format the dialect's clients read (see
	// hub.RegisterFormat); each message is one text frame.
	Format() hub.Format
	// Open starts a new connection. It returns the options of its client
	// (see redcast.Node.NewClientWith), and open, which is called with the
	// registered client and its outbox and returns what handles the
	// client's frames, or an error (a protocol.Disconnect to close with).
	Open() (redcast.ClientOptions, func(*redcast.Client, *outbox.Outbox) (Session, error))
	// Close returns what is written before the close frame when the
	// connection ends with d (a redcast disconnect, or one the session
	// chose), and the close frame's code and reason.
	Close(d protocol.Disconnect) (msg []byte, code uint16, reason string)
}

// Session handles the text frames of one connection, called from its read
// loop one at a time: HandleFrame for each frame, holding what it queues
// in the outbox (Outbox.Hold), and Flush when no further frame is at hand,
// to release it. redcast.Client is the Session of redcast's own protocol.
// A dialect's Session with a method Closed() has it called once, after the
// connection ended and its client was released.
type Session interface {
	HandleFrame(msg []byte)
	Flush()
}

// ServeDialect upgrades a request to a WebSocket spoken in dialect d: the
// same checks (origin, draining, connection limit) and limits (frame size,
// pings, write timeout) as redcast's own protocol.
func (h *Handler) ServeDialect(w http.ResponseWriter, r *http.Request, d Dialect) {
	h.serve(w, r, d.Format(), &kind{dialect: d})
}
