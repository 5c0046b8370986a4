package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wsdeflate"
	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/outbox"
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

// conn is one WebSocket connection: the outbox.Sink of its client's outbox
// (frames, writes, the close handshake), its ping timer, and the read
// deadline its read loop waits under. What is queued, coalesced and when it
// is written is the outbox's business (package outbox); conn only turns
// messages into frames and writes them.
type conn struct {
	nc     net.Conn
	format hub.Format
	// dialect tells the disconnects of a dialect's connection; nil for
	// redcast's protocol and plain mode.
	dialect Dialect
	limits  limits
	out     *outbox.Outbox // set by newConn; the client pushes to it
	// deflate compresses what the connection sends when it negotiated
	// permessage-deflate; nil otherwise. Set before the connection is
	// shared.
	deflate *wsdeflate.Compressor
	// wire counts the bytes written (redcast_wire_bytes_total); nil: not
	// counted. Set before the connection is shared.
	wire prometheus.Counter

	// deadline is the socket's write deadline. Only the outbox's sink
	// calls (one at a time) touch it.
	deadline time.Time
	// raw writes to the socket without waiting (see directConn); nil when
	// the connection has no file descriptor (TLS, tests). Set once.
	raw syscall.RawConn
	// wakeReader starts the read loop if it is parked, so that it sees
	// the connection end or its read deadline pass; nil when nothing
	// parks it. It is set before the connection is shared.
	wakeReader func()

	mu sync.Mutex
	// finished is set once the outbox ended: the read deadline is the
	// close linger's then, and the read loop's last read waits under it.
	finished bool
	ping     *time.Timer
	// nextPing is when the ping timer sends the next ping.
	nextPing time.Time
	// readDeadline is the socket's read deadline. While the read loop is
	// parked (see Handler.readLoop) nothing reads, so the runtime never
	// reports that it passed: the ping timer checks it instead.
	readDeadline time.Time
}

type limits struct {
	writeTimeout time.Duration
	pingInterval time.Duration
}

// newConn returns the connection of nc with an outbox made with opts.
func newConn(nc net.Conn, format hub.Format, l limits, opts outbox.Options) *conn {
	c := &conn{nc: nc, format: format, limits: l}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	var sink outbox.Sink = c
	if c.raw != nil {
		sink = directConn{c}
	}
	c.out = outbox.New(sink, opts)
	return c
}

// startPinging pings the peer every ping interval until the connection
// ends. A timer, not a goroutine, waits between pings.
func (c *conn) startPinging() {
	if c.limits.pingInterval <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.finished {
		c.nextPing = time.Now().Add(c.limits.pingInterval)
		c.ping = time.AfterFunc(c.limits.pingInterval, c.sendPing)
	}
}

// sendPing is the ping timer's function. It pings the peer when a ping is
// due, and stands in for the runtime's read deadline, which does not fire
// while the read loop is parked: once the read deadline has passed it
// wakes the read loop, whose read then fails as it would have, and when
// the deadline comes before the next ping it fires at the deadline, so
// that a silent peer is disconnected no later than by a waiting read.
func (c *conn) sendPing() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	if !now.Before(c.nextPing) {
		c.out.PushControl(ws.CompiledPing)
		c.nextPing = now.Add(c.limits.pingInterval)
	}
	next := c.nextPing
	expired := false
	if !c.readDeadline.IsZero() {
		expired = !now.Before(c.readDeadline)
		if !expired && c.readDeadline.Before(next) {
			next = c.readDeadline
		}
	}
	c.ping.Reset(next.Sub(now))
	wake := c.wakeReader
	c.mu.Unlock()
	if expired && wake != nil {
		wake()
	}
}

// sendControl queues a control frame (a pong) ahead of data.
func (c *conn) sendControl(f ws.Frame) {
	if b, err := ws.CompileFrame(f); err == nil {
		c.out.PushControl(b)
	}
}

// isFinished reports whether the outbox ended (see Finish).
func (c *conn) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// AppendFrames implements outbox.Sink: queued messages joined by '\n' into
// as few frames as possible for the full protocol, one frame each for
// plain mode. On a connection that negotiated compression, a message
// queued as a whole frame (a broadcast, compressed once for all its
// subscribers: hub.Event.Framed) is written as it is, and one as long as
// the compression threshold (a reply) is compressed into a frame of its
// own; shorter ones are joined as usual.
func (c *conn) AppendFrames(b []byte, batch [][]byte) []byte {
	for len(batch) > 0 {
		if c.deflate != nil && !c.joinable(batch[0]) {
			if wsdeflate.IsFrame(batch[0]) {
				b = append(b, batch[0]...)
			} else {
				b = c.deflate.Frame(b, batch[0])
			}
			batch = batch[1:]
			continue
		}
		n, size := 1, len(batch[0])
		if c.format == hub.FormatProtocol {
			for n < len(batch) && size+1+len(batch[n]) <= maxCoalescedFrame && c.joinable(batch[n]) {
				size += 1 + len(batch[n])
				n++
			}
		}
		b = wsframe.AppendServerHeader(b, ws.OpText, size)
		for i, msg := range batch[:n] {
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, msg...)
		}
		batch = batch[n:]
	}
	return b
}

// joinable reports whether msg goes out as text joined to others, rather
// than as a frame of its own (see AppendFrames).
func (c *conn) joinable(msg []byte) bool {
	return c.deflate == nil || len(msg) < c.deflate.Threshold() && !wsdeflate.IsFrame(msg)
}

// AppendClose implements outbox.Sink: the disconnect push (full protocol,
// unless the peer closed first), or a dialect's last message, and the close
// frame.
func (c *conn) AppendClose(b []byte, d protocol.Disconnect) []byte {
	var last []byte
	code, reason := d.Code, d.Reason
	switch {
	case d == peerClosed:
	case c.dialect != nil:
		last, code, reason = c.dialect.Close(d)
	case c.format == hub.FormatProtocol:
		last = d.AppendPush(nil)
	}
	if last != nil {
		b = append(wsframe.AppendServerHeader(b, ws.OpText, len(last)), last...)
	}
	f, err := ws.CompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
	if err == nil {
		b = append(b, f...)
	}
	return b
}

// Write implements outbox.Sink: one write, bounded by the write timeout.
func (c *conn) Write(b []byte) error {
	// Move the deadline only when half of it is used up: setting it costs
	// a runtime timer update, and a write never blocks for long unless the
	// peer stopped reading.
	if now := time.Now(); c.deadline.Sub(now) < c.limits.writeTimeout/2 {
		c.deadline = now.Add(c.limits.writeTimeout)
		if err := c.nc.SetWriteDeadline(c.deadline); err != nil {
			return err
		}
	}
	n, err := c.nc.Write(b)
	c.count(n)
	return err
}

// count adds n written bytes to the connection's wire counter.
func (c *conn) count(n int) {
	if c.wire != nil && n > 0 {
		c.wire.Add(float64(n))
	}
}

// Finish implements outbox.Sink. After the close frame (err nil) it
// half-closes the socket and bounds how long the read loop waits for the
// peer's answer; after a failed write it closes the socket, which ends the
// read loop. Either way a parked read loop is woken: a closed socket leaves
// the poller's set without an event.
func (c *conn) Finish(err error) {
	if err != nil {
		_ = c.nc.Close()
	} else if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	c.mu.Lock()
	c.finished = true
	if c.ping != nil {
		c.ping.Stop()
	}
	if err == nil {
		c.readDeadline = time.Now().Add(closeLinger)
		_ = c.nc.SetReadDeadline(c.readDeadline)
	}
	wake := c.wakeReader
	c.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// directConn is the sink of a connection with a file descriptor: it can
// also write without waiting (outbox.TryWriter).
type directConn struct{ *conn }

// TryWrite implements outbox.TryWriter with one write system call that
// does not wait for the socket to become writable.
func (c directConn) TryWrite(b []byte) (int, error) {
	tw := tryWrite{b: b}
	err := c.raw.Write(tw.write)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline of an earlier write has passed: a write that does
		// not wait needs none, and Write sets its own.
		c.deadline = time.Time{}
		if err = c.nc.SetWriteDeadline(c.deadline); err == nil {
			err = c.raw.Write(tw.write)
		}
	}
	if err == nil {
		err = tw.err
	}
	c.count(tw.n)
	return tw.n, err
}

// tryWrite is one write of b straight to a socket.
type tryWrite struct {
	b   []byte
	n   int
	err error
}

// write is the function raw.Write calls with the socket; returning true
// tells the runtime not to wait for the socket either.
func (w *tryWrite) write(fd uintptr) bool {
	for len(w.b) > w.n {
		n, err := syscall.Write(int(fd), w.b[w.n:])
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			w.n += n
		}
		if err != nil || n <= 0 {
			w.err = err
			if err == nil {
				w.err = io.ErrShortWrite
			}
			break
		}
	}
	return true
}

// extendReadDeadline gives the peer d more to send its next frame, unless the
// connection ended (then the close linger deadline stays).
func (c *conn) extendReadDeadline(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return nil
	}
	c.readDeadline = time.Now().Add(d)
	return c.nc.SetReadDeadline(c.readDeadline)
}

// readLinger is how long a read loop waits for the peer on its goroutine
// before it parks the socket: a client that sends often (a publisher)
// keeps its goroutine and is read at once, without the poller's wake-up
// and a new goroutine per frame; one that went quiet parks soon.
const readLinger = 250 * time.Millisecond

// errLingerOver is linger's answer when the peer sent nothing: park.
var errLingerOver = errors.New("websocket: nothing read while lingering")

// linger waits up to readLinger for the peer to send, reading the first
// byte of its next frame (see reader.wait). It returns nil when the peer
// sent, errLingerOver when it did not (or the connection cannot park), and
// the read's error otherwise: a read deadline that passed (the ping
// timeout) or a failed socket. The read deadline in force
// (extendReadDeadline, or the close linger of an ended connection) is the
// socket's again when it returns.
func (c *conn) linger(rd *reader) error {
	if c.raw == nil || c.limits.pingInterval <= 0 {
		return errLingerOver
	}
	c.mu.Lock()
	deadline := c.readDeadline
	c.mu.Unlock()
	if until := time.Now().Add(readLinger); until.Before(deadline) {
		if c.nc.SetReadDeadline(until) != nil {
			return errLingerOver
		}
	}
	err := rd.wait()
	if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
		err = errLingerOver
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rerr := c.nc.SetReadDeadline(c.readDeadline); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
