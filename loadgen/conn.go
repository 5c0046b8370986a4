package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// readBufferSize is each connection's read buffer. Frames larger than it
// are read straight into the frame buffer, so it can stay small.
const readBufferSize = 4096

// maxFrameSize bounds a frame the load generator accepts from the server.
const maxFrameSize = 16 << 20

// errFrameTooLarge ends a connection whose server sent a frame above
// maxFrameSize.
var errFrameTooLarge = errors.New("loadgen: frame from the server too large")

// closeError is a connection's end by a close frame from the server.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("closed by server: %d %s", e.code, e.reason) }

// conn is a client WebSocket connection. One goroutine reads (next); writes
// may come from several (a publisher's writer and its reader's pongs) and
// are serialized.
type conn struct {
	nc net.Conn
	br *bufio.Reader
	// reads counts the reads from the socket, so that the reader knows
	// which frames arrived together.
	reads *countingReader

	hdr [ws.MaxHeaderSize]byte // header buffer of the reader
	buf []byte                 // frame buffer of the reader

	wmu sync.Mutex
}

// dial opens a WebSocket connection to u, from src when it is valid.
func dial(ctx context.Context, u string, src netip.Addr) (*conn, error) {
	d := ws.Dialer{Timeout: connectTimeout}
	if src.IsValid() {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		d.NetDial = nd.DialContext
	}
	nc, br, _, err := d.Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{r: nc}
	var r io.Reader = cr
	if br != nil {
		// The server sent frames right after the handshake: br holds
		// them.
		r = io.MultiReader(br, cr)
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(r, readBufferSize), reads: cr}, nil
}

// countingReader counts the reads of the reader under a connection's
// buffer.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.n++
	return c.r.Read(p)
}

// next returns the payload of the next data frame, valid until the next
// call. It answers pings and returns a *closeError for a close frame. The
// server never fragments messages, so a frame is a message.
func (c *conn) next() ([]byte, error) {
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdr[:])
		if err != nil {
			return nil, err
		}
		if h.Length > maxFrameSize {
			return nil, errFrameTooLarge
		}
		n := int(h.Length)
		if cap(c.buf) < n {
			c.buf = make([]byte, n, max(n, 2*cap(c.buf)))
		}
		p := c.buf[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := c.write(appendFrame(nil, ws.OpPong, p)); err != nil {
				return nil, err
			}
		case ws.OpPong:
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			return nil, &closeError{code: code, reason: reason}
		default:
			return p, nil
		}
	}
}

// write writes one or more encoded frames.
func (c *conn) write(frames []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(frames)
	return err
}

// close sends a close frame, without waiting for the answer, and closes the
// socket, which ends the reader.
func (c *conn) close() {
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.nc.Write(closeFrame)
	c.wmu.Unlock()
	_ = c.nc.Close()
}

var closeFrame = appendFrame(nil, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))

// appendFrame appends a masked client frame holding payload to dst.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|byte(op))
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}
