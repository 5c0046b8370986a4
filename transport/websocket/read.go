package websocket

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

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
	r.buf = r.buf[:0]
	fragmented := false
	for {
		if err := r.c.extendReadDeadline(r.idle); err != nil {
			return nil, err
		}
		h, err := r.readHeader()
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
			if !fragmented && r.waiting() {
				return nil, errDrained
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
	h, extra := decodeHeaderStart(b)
	if !h.Fin || h.OpCode != ws.OpText && h.OpCode != ws.OpContinuation || len(b) < 2+extra {
		return false
	}
	return decodeHeaderRest(&h, b[2:2+extra]) && h.Length <= int64(n-2-extra)
}

// readHeader reads a frame header. When nothing is buffered it gives the
// read buffer back and waits for the first bytes without one.
func (r *reader) readHeader() (ws.Header, error) {
	var h ws.Header
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
				err = noEOF(err)
			}
			return h, err
		}
	}
	if r.br == nil {
		r.br = readBufs.Get().(*bufio.Reader)
		r.br.Reset(&r.src)
	}
	if !direct {
		if _, err := io.ReadFull(r.br, b); err != nil {
			return h, err
		}
	}
	h, extra := decodeHeaderStart(b)
	if extra == 0 {
		return h, nil
	}
	e := r.hdr[2 : 2+extra]
	if _, err := io.ReadFull(r.br, e); err != nil {
		return h, noEOF(err)
	}
	if !decodeHeaderRest(&h, e) {
		return h, r.violation(protocol.DisconnectBadFrame)
	}
	return h, nil
}

// decodeHeaderStart decodes the first two bytes of a frame header and
// returns how many bytes of it follow (extended length and mask).
func decodeHeaderStart(b []byte) (h ws.Header, extra int) {
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	switch n := b[1] & 0x7f; n {
	case 126:
		extra = 2
	case 127:
		extra = 8
	default:
		h.Length = int64(n)
	}
	if h.Masked {
		extra += 4
	}
	return h, extra
}

// decodeHeaderRest decodes the extended length and mask that follow the
// first two bytes (e, of the length decodeHeaderStart gave). It reports
// false for a length that does not fit an int64.
func decodeHeaderRest(h *ws.Header, e []byte) bool {
	switch len(e) &^ 4 {
	case 2:
		h.Length = int64(binary.BigEndian.Uint16(e))
		e = e[2:]
	case 8:
		l := binary.BigEndian.Uint64(e)
		if l > 1<<63-1 {
			return false
		}
		h.Length = int64(l)
		e = e[8:]
	}
	if h.Masked {
		copy(h.Mask[:], e)
	}
	return true
}

// noEOF turns an EOF inside a header into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// park gives back both buffers between messages, before a wait for the
// peer: call it only when waiting() is true and next returned a message
// or errDrained.
func (r *reader) park() {
	r.buf = nil
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
	<-r.c.done()
	if r.br != nil {
		_, _ = io.Copy(io.Discard, r.br)
		r.release()
		return
	}
	_, _ = io.Copy(io.Discard, &r.src)
}
