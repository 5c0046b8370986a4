package websocket

import (
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// maxCoalescedFrame is the size at which the writer starts a new frame
// when it joins queued messages of the full protocol.
const maxCoalescedFrame = 64 << 10

// closeLinger bounds how long a closing connection waits for the peer to
// answer the close frame before the socket is closed.
const closeLinger = 2 * time.Second

// peerClosed is the Close of a connection whose peer sent a close frame:
// it is answered with a bare close frame.
var peerClosed = protocol.Disconnect{Code: uint16(ws.StatusNormalClosure)}

// conn is one WebSocket connection: the redcast.Transport the client writes
// to, and the writer goroutine that owns all writes to the socket.
type conn struct {
	nc     net.Conn
	format hub.Format
	limits limits

	mu       sync.Mutex
	queue    [][]byte
	queued   int      // bytes in queue
	control  [][]byte // encoded control frames (pongs) to write first
	closing  bool
	closeMsg protocol.Disconnect
	// dropQueue tells the writer to discard the queue instead of writing it
	// (a slow consumer will not read it anyway).
	dropQueue bool

	wake       chan struct{} // cap 1: something to write
	writerDone chan struct{}
}

type limits struct {
	maxMessages  int
	maxBytes     int
	writeTimeout time.Duration
	pingInterval time.Duration
}

func newConn(nc net.Conn, format hub.Format, l limits) *conn {
	return &conn{
		nc:         nc,
		format:     format,
		limits:     l,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Send implements redcast.Transport.
func (c *conn) Send(msg []byte) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.limits.maxMessages || c.queued+len(msg) > c.limits.maxBytes {
		c.mu.Unlock()
		return false
	}
	c.queue = append(c.queue, msg)
	c.queued += len(msg)
	c.mu.Unlock()
	c.signal()
	return true
}

// Close implements redcast.Transport. The first call wins; the writer then
// sends what is queued (unless the client is a slow consumer), the
// disconnect, and the close frame.
func (c *conn) Close(d protocol.Disconnect) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeMsg = d
	c.dropQueue = d == protocol.DisconnectSlowConsumer
	c.mu.Unlock()
	c.signal()
}

// sendControl queues a control frame (a pong) ahead of data.
func (c *conn) sendControl(f ws.Frame) {
	b, err := ws.CompileFrame(f)
	if err != nil {
		return
	}
	c.mu.Lock()
	if !c.closing && len(c.control) < 8 {
		c.control = append(c.control, b)
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// writeLoop owns the socket's write side until the connection closes. It
// returns after writing the close frame (or failing to write), having
// half-closed the socket so that the read loop sees the peer's answer or EOF.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.limits.pingInterval)
	defer ping.Stop()
	var batch, control [][]byte
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			control = append(control[:0], ws.CompiledPing)
			if c.flush(control, nil) != nil {
				c.abort()
				return
			}
			continue
		}
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		control, c.control = c.control, control[:0]
		c.queued = 0
		closing, drop, d := c.closing, c.dropQueue, c.closeMsg
		c.mu.Unlock()
		if drop {
			batch = batch[:0]
		}
		if closing {
			c.finish(control, batch, d)
			return
		}
		if err := c.flush(control, batch); err != nil {
			c.abort()
			return
		}
		clear(batch) // let the queued messages be collected
	}
}

// writeBufs holds the buffers flushes assemble frames in, so that an idle
// connection holds none and a busy one reuses them.
var writeBufs = sync.Pool{New: func() any { return new(frameBuf) }}

// frameBuf is an io.Writer that appends to a byte slice.
type frameBuf struct{ b []byte }

func (f *frameBuf) Write(p []byte) (int, error) {
	f.b = append(f.b, p...)
	return len(p), nil
}

// maxPooledBuf is the largest buffer returned to the pool.
const maxPooledBuf = 256 << 10

// flush writes control frames, then the batch, with one write to the
// socket: the frames are assembled in a pooled buffer first, which costs a
// copy of a few bytes per message and saves a system call per 4 KiB.
func (c *conn) flush(control, batch [][]byte) error {
	fb := writeBufs.Get().(*frameBuf)
	defer func() {
		if cap(fb.b) <= maxPooledBuf {
			fb.b = fb.b[:0]
			writeBufs.Put(fb)
		}
	}()
	for _, f := range control {
		fb.b = append(fb.b, f...)
	}
	c.appendBatch(fb, batch)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.limits.writeTimeout)); err != nil {
		return err
	}
	_, err := c.nc.Write(fb.b)
	return err
}

// appendBatch appends queued messages as frames: joined by '\n' into as few
// frames as possible for the full protocol, one frame each for plain mode.
func (c *conn) appendBatch(fb *frameBuf, batch [][]byte) {
	for len(batch) > 0 {
		n, size := 1, len(batch[0])
		if c.format == hub.FormatProtocol {
			for n < len(batch) && size+1+len(batch[n]) <= maxCoalescedFrame {
				size += 1 + len(batch[n])
				n++
			}
		}
		_ = ws.WriteHeader(fb, ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(size)}) // cannot fail on a frameBuf
		for i, msg := range batch[:n] {
			if i > 0 {
				fb.b = append(fb.b, '\n')
			}
			fb.b = append(fb.b, msg...)
		}
		batch = batch[n:]
	}
}

// finish writes what is left, the disconnect push (full protocol) and the
// close frame, then half-closes the socket and bounds how long the read loop
// waits for the peer.
func (c *conn) finish(control, batch [][]byte, d protocol.Disconnect) {
	if c.format == hub.FormatProtocol && d != peerClosed {
		batch = append(batch, d.AppendPush(nil))
	}
	closeFrame, err := ws.CompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(d.Code), d.Reason)))
	if err == nil {
		control = append(control, closeFrame)
	}
	// Data first, then the close frame: write them in that order.
	if err := c.flush(nil, batch); err == nil {
		_ = c.flush(control, nil)
	}
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	c.mu.Lock()
	_ = c.nc.SetReadDeadline(time.Now().Add(closeLinger))
	c.mu.Unlock()
}

// extendReadDeadline gives the peer d more to send its next frame, unless the
// connection is closing (then the close linger deadline stays).
func (c *conn) extendReadDeadline(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	return c.nc.SetReadDeadline(time.Now().Add(d))
}

// abort is the writer's answer to a failed write: the peer is gone or too
// slow; close the socket so that the read loop ends.
func (c *conn) abort() {
	c.mu.Lock()
	c.closing = true
	c.queue = nil
	c.mu.Unlock()
	_ = c.nc.Close()
}
