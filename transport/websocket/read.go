package websocket

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/protocol"
)

// errViolation ends the read loop after the reader closed the connection
// for a protocol violation.
var errViolation = errors.New("websocket: protocol violation")

// errClosedByPeer ends the read loop when the peer sent a close frame.
var errClosedByPeer = errors.New("websocket: closed by peer")

// maxReuse is the largest message buffer a reader keeps between messages;
// a larger one is released so that idle connections stay small.
const maxReuse = 8 << 10

// reader reads client messages from a connection: it unmasks payloads,
// reassembles fragmented messages up to a size limit, answers pings through
// the writer, and rejects what the protocol does not allow.
type reader struct {
	c       *conn
	br      *bufio.Reader
	maxSize int
	// idle is how long the reader waits for the next frame before the
	// connection counts as dead.
	idle time.Duration
	// tooLarge and binary are the disconnects for those violations, which
	// differ between the full protocol and plain mode.
	tooLarge, binary protocol.Disconnect

	buf []byte
}

// next returns the next complete text message. The returned slice is valid
// until the next call. On a protocol violation it closes the connection with
// the matching disconnect and returns errViolation.
func (r *reader) next() ([]byte, error) {
	if cap(r.buf) > maxReuse {
		r.buf = nil
	}
	r.buf = r.buf[:0]
	fragmented := false
	for {
		if err := r.c.extendReadDeadline(r.idle); err != nil {
			return nil, err
		}
		h, err := ws.ReadHeader(r.br)
		if err != nil {
			return nil, err
		}
		if !h.Masked || h.Rsv != 0 {
			return nil, r.violation(protocol.DisconnectBadFrame)
		}
		if h.OpCode.IsControl() {
			if err := r.control(h); err != nil {
				return nil, err
			}
			continue
		}
		switch h.OpCode {
		case ws.OpText:
			if fragmented {
				return nil, r.violation(protocol.DisconnectBadFrame)
			}
		case ws.OpContinuation:
			if !fragmented {
				return nil, r.violation(protocol.DisconnectBadFrame)
			}
		case ws.OpBinary:
			return nil, r.violation(r.binary)
		default:
			return nil, r.violation(protocol.DisconnectBadFrame)
		}
		if h.Length > int64(r.maxSize-len(r.buf)) {
			return nil, r.violation(r.tooLarge)
		}
		start := len(r.buf)
		r.buf = slices.Grow(r.buf, int(h.Length))[:start+int(h.Length)]
		if _, err := io.ReadFull(r.br, r.buf[start:]); err != nil {
			return nil, err
		}
		ws.Cipher(r.buf[start:], h.Mask, 0)
		if !h.Fin {
			fragmented = true
			continue
		}
		if !utf8.Valid(r.buf) {
			return nil, r.violation(protocol.DisconnectBadFrame)
		}
		return r.buf, nil
	}
}

// control handles a control frame: ping is answered with pong, close ends
// the connection, pong only proves the peer is alive.
func (r *reader) control(h ws.Header) error {
	if !h.Fin || h.Length > 125 {
		return r.violation(protocol.DisconnectBadFrame)
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return err
	}
	ws.Cipher(payload, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		r.c.sendControl(ws.NewPongFrame(payload))
	case ws.OpClose:
		return errClosedByPeer
	}
	return nil
}

// violation closes the connection with d.
func (r *reader) violation(d protocol.Disconnect) error {
	r.c.Close(d)
	return errViolation
}

// drain discards what the peer still sends until it closes or the close
// linger deadline (set by the writer) passes, so that closing the socket
// does not reset the connection before the peer has read our close frame.
func (r *reader) drain() {
	<-r.c.writerDone
	_, _ = io.Copy(io.Discard, r.br)
}
