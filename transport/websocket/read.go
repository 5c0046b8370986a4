package websocket

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsdeflate"
	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

// errViolation ends the read loop on a protocol violation; the reader's
// violated field holds the disconnect to close the connection with.
var errViolation = errors.New("websocket: protocol violation")

// errClosedByPeer ends the read loop when the peer sent a close frame.
var errClosedByPeer = errors.New("websocket: closed by peer")

// errDrained is returned by next when it handled control frames (a pong,
// say) and the peer sent nothing more: the read loop may park then,
// rather than wait for the next message where it is.
var errDrained = errors.New("websocket: no message, the peer's data is used up")

// maxReuse is the largest message buffer a reader keeps between the
// messages of a burst; it keeps none while it waits for the peer.
const maxReuse = 8 << 10

// readBufferSize is the size of the pooled read buffers.
const readBufferSize = 4 << 10

// readBufs holds read buffers: a reader takes one when the peer's data
// arrives and gives it back when it has read all of it, so that an idle
// connection holds none.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// source is what a reader reads: the bytes that came with the upgrade
// request, then the socket.
type source struct {
	pre []byte
	nc  net.Conn
}

func (s *source) Read(p []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.nc.Read(p)
}

// reader reads client messages from a connection: it unmasks payloads,
// reassembles fragmented messages up to a size limit, answers pings through
// the writer, and rejects what the protocol does not allow.
//
// It waits for the peer without a buffer: the first two bytes of a frame
// are read straight from the socket, and only then is a pooled buffer taken
// for the rest, until the peer's data is used up.
type reader struct {
	c       *conn
	src     source
	br      *bufio.Reader // nil while waiting for the peer
	maxSize int
	// idle is how long the reader waits for the next frame before the
	// connection counts as dead.
	idle time.Duration
	// tooLarge and binary are the disconnects for those violations, which
	// differ between the full protocol and plain mode.
	tooLarge, binary protocol.Disconnect

	hdr [ws.MaxHeaderSize]byte
	// first is set when wait read the first byte of the next header.
	first bool
	// violated is the disconnect for the violation next reported.
	violated protocol.Disconnect
	buf      []byte
	// inflated holds a compressed message once inflated (see next).
	inflated []byte
}

func newReader(c *conn, pre []byte) *reader {
	return &reader{c: c, src: source{pre: pre, nc: c.nc}}
}

// next returns the next complete text message. The returned slice is valid
// until the next call. On a protocol violation it returns errViolation,
// with the disconnect to close the connection with in r.violated; after
// control frames outside a message, with nothing more to read, it returns
// errDrained.
func (r *reader) next() ([]byte, error) {
	if cap(r.buf) > maxReuse {
		r.buf = nil
	}
	if cap(r.inflated) > maxReuse {
		r.inflated = nil
	}
	r.buf = r.buf[:0]
	fragmented, compressed := false, false
	for {
		if err := r.c.extendReadDeadline(r.idle); err != nil {
			return nil, err
		}
		h, err := r.readHeader(fragmented, int64(r.maxSize-len(r.buf)))
		if err != nil {
			return nil, err
		}
		if h.OpCode.IsControl() {
			if err := r.control(h); err != nil {
				return nil, err
			}
			if !fragmented && r.waiting() {
				return nil, errDrained
			}
			continue
		}
		start := len(r.buf)
		r.buf = slices.Grow(r.buf, int(h.Length))[:start+int(h.Length)]
		if _, err := io.ReadFull(r.br, r.buf[start:]); err != nil {
			return nil, err
		}
		ws.Cipher(r.buf[start:], h.Mask, 0)
		if !fragmented {
			compressed = h.Rsv&rsv1 != 0
		}
		if !h.Fin {
			fragmented = true
			continue
		}
		msg := r.buf
		if compressed {
			var err error
			if r.inflated, err = wsdeflate.Inflate(r.inflated[:0], r.buf, r.maxSize); err != nil {
				if errors.Is(err, wsdeflate.ErrTooLarge) {
					return nil, r.violation(r.tooLarge)
				}
				return nil, r.violation(protocol.DisconnectBadFrame)
			}
			msg = r.inflated
		}
		if !utf8.Valid(msg) {
			return nil, r.violation(protocol.DisconnectBadFrame)
		}
		return msg, nil
	}
}

// wait waits until the peer sends, with no buffer and the shallowest
// stack it can: it reads the first byte of the next frame straight from
// the socket. The read deadline must be set. Call it only when waiting()
// is true.
func (r *reader) wait() error {
	n, err := r.src.nc.Read(r.hdr[:1])
	if n == 1 {
		r.first = true
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// waiting reports whether the next read waits for the peer: nothing of
// its data is buffered.
func (r *reader) waiting() bool {
	return len(r.src.pre) == 0 && (r.br == nil || r.br.Buffered() == 0)
}

// frameBuffered reports whether the next frame is a whole, final data frame
// that is buffered already, so that next returns it without waiting for
// the peer.
func (r *reader) frameBuffered() bool {
	if r.br == nil || len(r.src.pre) > 0 {
		return false
	}
	n := r.br.Buffered()
	if n < 2 {
		return false
	}
	b, _ := r.br.Peek(min(n, ws.MaxHeaderSize))
	h, err := wsframe.DecodeHeader(b, ws.StateServerSide, int64(r.maxSize))
	return err == nil && h.Fin && h.OpCode == ws.OpText && h.Length <= int64(n-wsframe.HeaderLen(b))
}

// readHeader reads a frame header and checks it: masked, no reserved bits
// or opcodes, a continuation only in a fragmented message, a data frame of
// at most limit bytes. When nothing is buffered it gives the read buffer
// back and waits for the first bytes without one.
func (r *reader) readHeader(fragmented bool, limit int64) (ws.Header, error) {
	b := r.hdr[:2]
	direct := r.waiting()
	if direct {
		r.release()
		from := b
		if r.first {
			from, r.first = b[1:], false
		}
		if _, err := io.ReadFull(&r.src, from); err != nil {
			if len(from) < len(b) {
				err = wsframe.NoEOF(err)
			}
			return ws.Header{}, err
		}
	}
	if r.br == nil {
		r.br = readBufs.Get().(*bufio.Reader)
		r.br.Reset(&r.src)
	}
	if !direct {
		if _, err := io.ReadFull(r.br, b); err != nil {
			return ws.Header{}, err
		}
	}
	n := wsframe.HeaderLen(b)
	if _, err := io.ReadFull(r.br, r.hdr[2:n]); err != nil {
		return ws.Header{}, wsframe.NoEOF(err)
	}
	state := ws.StateServerSide
	if fragmented {
		state = state.Set(ws.StateFragmented)
	}
	if r.c.deflate != nil {
		state = state.Set(ws.StateExtended) // RSV1 is checked below
	}
	h, err := wsframe.DecodeHeader(r.hdr[:n], state, limit)
	tooLarge := errors.Is(err, wsframe.ErrTooLarge)
	// With permessage-deflate, only RSV1 is used, and only on the first
	// frame of a data message (RFC 7692, 6).
	badRsv := h.Rsv&^rsv1 != 0 || h.Rsv&rsv1 != 0 && (h.OpCode.IsControl() || h.OpCode == ws.OpContinuation)
	switch {
	case err == nil && badRsv:
		return h, r.violation(protocol.DisconnectBadFrame)
	case h.OpCode == ws.OpBinary && (err == nil || tooLarge):
		// Plain mode answers binary frames, of any size, with its own
		// disconnect.
		return h, r.violation(r.binary)
	case tooLarge:
		return h, r.violation(r.tooLarge)
	case err != nil:
		return h, r.violation(protocol.DisconnectBadFrame)
	}
	return h, nil
}

// rsv1 is the header's Rsv bit that marks a compressed message.
const rsv1 = 0x04

// park gives back both buffers between messages, before a wait for the
// peer: call it only when waiting() is true and next returned a message
// or errDrained.
func (r *reader) park() {
	r.buf, r.inflated = nil, nil
	r.release()
}

// release gives the read buffer back to the pool.
func (r *reader) release() {
	if r.br != nil {
		r.br.Reset(nil)
		readBufs.Put(r.br)
		r.br = nil
	}
}

// control handles a control frame: ping is answered with pong, close ends
// the connection, pong only proves the peer is alive. readHeader has
// checked that it is final and of at most 125 bytes.
func (r *reader) control(h ws.Header) error {
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

// violation reports a violation, to be answered with disconnect d.
func (r *reader) violation(d protocol.Disconnect) error {
	r.violated = d
	return errViolation
}

// drain discards what the peer still sends until it closes or the close
// linger deadline (set by the writer) passes, so that closing the socket
// does not reset the connection before the peer has read our close frame.
// It gives the read buffer back.
func (r *reader) drain() {
	<-r.c.out.Done()
	if r.br != nil {
		_, _ = io.Copy(io.Discard, r.br)
		r.release()
		return
	}
	_, _ = io.Copy(io.Discard, &r.src)
}
