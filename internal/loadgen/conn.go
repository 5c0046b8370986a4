package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsdeflate"
	"github.com/redcast/redcast/internal/wsframe"
)

// readBufferSize is each connection's read buffer. Frames larger than it
// are read straight into the frame buffer, so it can stay small.
const readBufferSize = 4096

// maxFrameSize bounds a frame the load generator accepts from the server.
const maxFrameSize = 16 << 20

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
	// deflate is set when the server accepted permessage-deflate; inflated
	// holds a compressed frame's message then.
	deflate  bool
	inflated []byte

	wmu sync.Mutex
}

// dial opens a WebSocket connection to u, from src when it is valid.
func dial(ctx context.Context, u string, src netip.Addr, compression bool) (*conn, error) {
	d := ws.Dialer{Timeout: connectTimeout}
	if compression {
		d.Extensions = []httphead.Option{deflateOffer}
	}
	if src.IsValid() {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		d.NetDial = nd.DialContext
	}
	nc, br, hs, err := d.Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	accepted := false
	for _, e := range hs.Extensions {
		accepted = accepted || bytes.Equal(e.Name, deflateOffer.Name)
	}
	cr := &countingReader{r: nc}
	var r io.Reader = cr
	if br != nil {
		// The server sent frames right after the handshake (a Pusher
		// server does): br holds them. Only what it holds: past it, br
		// would read the socket itself, uncounted.
		r = io.MultiReader(io.LimitReader(br, int64(br.Buffered())), cr)
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(r, readBufferSize), reads: cr, deflate: accepted}, nil
}

// deflateOffer is the permessage-deflate offer of Options.Compression.
var deflateOffer = httphead.NewOption("permessage-deflate", map[string]string{"client_no_context_takeover": ""})

// countingReader counts the reads of the reader under a connection's
// buffer.
type countingReader struct {
	r     io.Reader
	n     int
	bytes int64 // read from the socket: what came over the wire
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.n++
	n, err := c.r.Read(p)
	c.bytes += int64(n)
	return n, err
}

// next returns the payload of the next data frame, valid until the next
// call. It answers pings and returns a *closeError for a close frame. The
// server never fragments messages, so a frame is a message.
func (c *conn) next() ([]byte, error) {
	for {
		state := ws.StateClientSide
		if c.deflate {
			state = state.Set(ws.StateExtended)
		}
		h, err := wsframe.ReadHeader(c.br, &c.hdr, state, maxFrameSize)
		if err != nil {
			return nil, err
		}
		n := int(h.Length)
		if cap(c.buf) < n {
			c.buf = make([]byte, n, max(n, 2*cap(c.buf)))
		}
		p := c.buf[:n]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := c.write(wsframe.AppendClientFrame(nil, ws.OpPong, p)); err != nil {
				return nil, err
			}
		case ws.OpPong:
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			return nil, &closeError{code: code, reason: reason}
		default:
			if h.Rsv&0x4 != 0 { // compressed
				if c.inflated, err = wsdeflate.Inflate(c.inflated[:0], p, maxFrameSize); err != nil {
					return nil, err
				}
				return c.inflated, nil
			}
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

var closeFrame = wsframe.AppendClientFrame(nil, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
