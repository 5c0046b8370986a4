package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

// maxCoalescedFrame is the size at which the writer starts a new frame
// when it joins queued messages of the full protocol.
const maxCoalescedFrame = 64 << 10

// closeLinger bounds how long a closing connection waits for the peer to
// answer the close frame before the socket is closed.
const closeLinger = 2 * time.Second

// DefaultFlushWindow is how long a busy connection's writer gathers
// messages after a write before it writes again (Options.FlushWindow).
const DefaultFlushWindow = 4 * time.Millisecond

// writerLinger is how long a writer waits for more once the queue is
// empty before it ends: long enough that a connection receiving a stream
// in bursts keeps its writer, short enough that idle ones have none.
const writerLinger = 250 * time.Millisecond

// peerClosed is the Close of a connection whose peer sent a close frame:
// it is answered with a bare close frame.
var peerClosed = protocol.Disconnect{Code: uint16(ws.StatusNormalClosure)}

// conn is one WebSocket connection: the redcast.Transport the client writes
// to. Writes to the socket are made by the connection's writer, a
// goroutine that runs only while there is something to write (an idle
// connection has none, and holds no write buffer), or, while no writer is
// at work, directly by the goroutine that has something to send (see
// SendDirect and flushNow), with a write that never waits.
//
// The writer writes the first message after a quiet spell at once, then
// gathers what arrives during the flush window into the next write, so that
// a connection that receives a steady stream makes one system call per
// window rather than per message. Replies to the client's own commands do
// not wait: the read loop calls flushNow after each frame it handled.
type conn struct {
	nc     net.Conn
	format hub.Format
	limits limits

	mu       sync.Mutex
	queue    [][]byte
	queued   int      // bytes in queue
	control  [][]byte // encoded control frames (pings, pongs) to write first
	closing  bool
	closeMsg protocol.Disconnect
	// writeTimedOut records that a write did not finish within the write
	// timeout, so that the client is released as a slow consumer.
	writeTimedOut atomic.Bool
	// dropQueue tells the writer to discard the queue instead of writing it
	// (a slow consumer will not read it anyway).
	dropQueue bool
	// writing is true while a writer goroutine runs; it is started by the
	// first message queued when none runs.
	writing bool
	// parked is true while the writer waits with an empty queue: the next
	// message wakes it, so that it goes out at once.
	parked bool
	// finished is set once a writer wrote the close frame or gave up on
	// the socket: no writer starts after it.
	finished bool
	ping     *time.Timer
	// nextPing is when the ping timer sends the next ping.
	nextPing time.Time
	// deadline is the socket's write deadline (the writer's).
	deadline time.Time
	// flushing is true while the writer writes outside c.mu: nothing else
	// may write then.
	flushing bool
	// holding is true while the read loop handles a frame: the replies it
	// queues go out together when it calls flushNow.
	holding bool
	// lastWrite is when data was last written, by the writer or directly;
	// the flush window runs from it.
	lastWrite time.Time
	// partial is the unwritten rest of a direct write that the socket did
	// not take whole; the writer writes it before anything else.
	partial []byte
	// raw writes to the socket without waiting (see writeDirectLocked);
	// nil when the connection has no file descriptor (TLS, tests).
	raw syscall.RawConn
	// readDeadline is the socket's read deadline. While the read loop is
	// parked (see Handler.readLoop) nothing reads, so the runtime never
	// reports that it passed: the ping timer checks it instead.
	readDeadline time.Time
	// wakeReader starts the read loop if it is parked, so that it sees
	// the connection close or its read deadline pass; nil when nothing
	// parks it. It is set before the connection is shared.
	wakeReader func()

	// kick (cap 1) ends the running writer's flush window or wait; nil
	// when no writer runs.
	kick chan struct{}
	// writerDone is closed once finished is set; made on demand (done).
	writerDone chan struct{}
}

type limits struct {
	maxMessages  int
	maxBytes     int
	writeTimeout time.Duration
	pingInterval time.Duration
	// flushWindow is how long the writer gathers messages between writes
	// of a busy connection; 0 writes as soon as it can.
	flushWindow time.Duration
}

func newConn(nc net.Conn, format hub.Format, l limits) *conn {
	c := &conn{nc: nc, format: format, limits: l}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// done returns a channel closed once no writer will write again: the close
// frame is written or the socket failed.
func (c *conn) done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writerDone == nil {
		c.writerDone = make(chan struct{})
		if c.finished {
			close(c.writerDone)
		}
	}
	return c.writerDone
}

// startPinging pings the peer every ping interval until the connection
// closes. A timer, not a goroutine, waits between pings.
func (c *conn) startPinging() {
	if c.limits.pingInterval <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
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
	if c.closing {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	if !now.Before(c.nextPing) {
		c.control = append(c.control, ws.CompiledPing)
		c.startWriterLocked()
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

// startWriterLocked starts the writer unless it runs, and wakes it when it
// waits with an empty queue; c.mu is held.
func (c *conn) startWriterLocked() {
	switch {
	case c.parked:
		c.parked = false
		c.kickWriter()
	case !c.writing && !c.finished:
		c.writing = true
		c.kick = make(chan struct{}, 1)
		go c.writeLoop(c.kick)
	}
}

// Send implements redcast.Transport.
func (c *conn) Send(msg []byte) bool { return c.send(msg, false) }

// SendDirect is Send for a message that the caller may write to the socket
// itself: when the connection is quiet (no writer at work, the flush window
// over, nothing queued), the message goes out at once from the caller's
// goroutine, without starting or waking the writer. The write never waits:
// what the socket does not take is left to the writer. The hub asks for
// this when a broadcast has few subscribers (see hub.Event.Direct), where
// a goroutine wake-up per delivery costs as much as the write.
func (c *conn) SendDirect(msg []byte) bool { return c.send(msg, true) }

func (c *conn) send(msg []byte, direct bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if len(c.queue) >= c.limits.maxMessages || c.queued+len(msg) > c.limits.maxBytes {
		return false
	}
	c.queue = append(c.queue, msg)
	c.queued += len(msg)
	if direct && len(c.queue) == 1 && c.canWriteDirectLocked() && c.windowOverLocked() {
		c.writeDirectLocked()
		return true
	}
	eighth := len(c.queue) == c.limits.maxMessages/8 || c.queued-len(msg) < c.limits.maxBytes/8 && c.queued >= c.limits.maxBytes/8
	if c.holding && (!c.writing || c.parked) && !eighth {
		// The read loop is handling a frame: flushNow writes this with
		// its replies (directly, when it may) once it is done.
		return true
	}
	c.startWriterLocked()
	if eighth {
		// An eighth full: the flush window must not make a slow
		// consumer of a client that reads.
		c.kickWriter()
	}
	return true
}

// canWriteDirectLocked reports whether a goroutine holding c.mu may write
// to the socket: no writer is in the middle of a write or has a write
// pending, and nothing half-written waits; c.mu is held.
func (c *conn) canWriteDirectLocked() bool {
	return c.raw != nil && !c.closing && !c.holding && !c.flushing &&
		(!c.writing || c.parked) && len(c.partial) == 0
}

// window returns the flush window, stretched while the process is
// saturated (see loadWatch), and whether it is stretched; while it is,
// even a connection that was quiet waits for it.
func (c *conn) window() (time.Duration, bool) {
	st := time.Duration(defaultClock.stretch.Load())
	return c.limits.flushWindow + st, st > 0
}

// windowOverLocked reports whether the flush window since the last write
// is over; c.mu is held.
func (c *conn) windowOverLocked() bool {
	if c.limits.flushWindow <= 0 {
		return true
	}
	w, _ := c.window()
	return time.Since(c.lastWrite) >= w
}

// writeDirectLocked writes the control frames and the queue to the socket
// from the calling goroutine, without waiting: what the socket does not
// take at once is kept in partial for the writer, which is started. A
// failed write closes the socket, as a failed write of the writer does.
// c.mu is held; canWriteDirectLocked is true.
func (c *conn) writeDirectLocked() {
	fb := writeBufs.Get().(*frameBuf)
	defer putFrameBuf(fb)
	for _, f := range c.control {
		fb.b = append(fb.b, f...)
	}
	c.appendBatch(fb, c.queue)
	clear(c.queue)
	clear(c.control)
	c.queue, c.control, c.queued = c.queue[:0], c.control[:0], 0
	n, err := c.writeRaw(fb)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The writer's deadline of an earlier write has passed: a write
		// that does not wait needs none, and the writer sets its own.
		c.deadline = time.Time{}
		if err = c.nc.SetWriteDeadline(c.deadline); err == nil {
			n, err = c.writeRaw(fb)
		}
	}
	c.lastWrite = time.Now()
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		// The peer is gone: close the socket, which the read loop sees
		// and releases the client. A parked writer ends as on Close.
		c.closing = true
		_ = c.nc.Close()
		if c.writing {
			c.kickWriter()
		} else {
			c.finishLocked()
		}
		if c.wakeReader != nil {
			// A closed socket leaves epoll without an event. (The
			// poller's lock is only ever taken after c.mu.)
			c.wakeReader()
		}
		return
	}
	if n < len(fb.b) {
		c.partial = append(c.partial[:0], fb.b[n:]...)
		c.startWriterLocked()
	}
}

// writeRaw writes fb.b with one raw.Write that does not wait, and returns
// how much the socket took.
func (c *conn) writeRaw(fb *frameBuf) (int, error) {
	fb.n, fb.err = 0, nil
	err := c.raw.Write(fb.writeNow)
	if err == nil {
		err = fb.err
	}
	return fb.n, err
}

// Close implements redcast.Transport. The first call wins; the writer then
// sends what is queued (unless the client is a slow consumer), the
// disconnect, and the close frame.
//
// A parked read loop is woken, so that it reads the peer's answer or sees
// the close linger deadline pass and then releases the client.
func (c *conn) Close(d protocol.Disconnect) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeMsg = d
	c.dropQueue = d == protocol.DisconnectSlowConsumer
	if c.ping != nil {
		c.ping.Stop()
	}
	c.startWriterLocked()
	c.kickWriter()
	wake := c.wakeReader
	c.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// hold makes the replies the read loop queues while it handles a frame
// wait for flushNow, which writes them together.
func (c *conn) hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// flushNow writes what is queued now: the read loop calls it after each
// frame it handled, so that replies do not wait for the flush window. It
// writes them itself when it may (see canWriteDirectLocked), and otherwise
// ends the writer's window.
func (c *conn) flushNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if len(c.queue) == 0 && len(c.control) == 0 {
		return
	}
	switch {
	case c.canWriteDirectLocked():
		c.writeDirectLocked()
	case c.writing:
		c.kickWriter()
	default:
		c.startWriterLocked()
	}
}

// kickWriter ends the writer's current or next flush window.
func (c *conn) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// sendControl queues a control frame (a pong) ahead of data.
func (c *conn) sendControl(f ws.Frame) {
	b, err := ws.CompileFrame(f)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing && len(c.control) < 8 {
		c.control = append(c.control, b)
		c.startWriterLocked()
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// writeLoop is the writer: it writes what is queued until the queue stays
// empty for writerLinger, or the connection closes. Closing, it writes the
// close frame and half-closes the socket so that the read loop sees the
// peer's answer or EOF.
func (c *conn) writeLoop(kick <-chan struct{}) {
	var (
		batch, control [][]byte
		partial        []byte
		quietSince     time.Time
	)
	wait := func(d time.Duration) {
		select {
		case <-defaultClock.after(d):
		case <-kick:
		}
	}
	c.mu.Lock()
	lastWrite := c.lastWrite
	c.mu.Unlock()
	if w, _ := c.window(); c.limits.flushWindow > 0 && time.Since(lastWrite) < w {
		// Started right after a direct write: gather for the rest of its
		// window.
		wait(w - time.Since(lastWrite))
	}
	for {
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		control, c.control = c.control, control[:0]
		partial, c.partial = c.partial, partial[:0]
		c.queued = 0
		closing, drop, d := c.closing, c.dropQueue, c.closeMsg
		if !closing && len(batch) == 0 && len(control) == 0 && len(partial) == 0 {
			now := time.Now()
			if quietSince.IsZero() {
				quietSince = now
			}
			if now.Sub(quietSince) >= writerLinger {
				// Stop, and hold no buffers while idle.
				c.writing, c.parked = false, false
				c.queue, c.control, c.partial, c.kick = nil, nil, nil, nil
				c.mu.Unlock()
				return
			}
			c.parked = true
			c.mu.Unlock()
			wait(writerLinger - now.Sub(quietSince))
			c.mu.Lock()
			c.parked = false
			lastWrite = c.lastWrite // a direct write may have been made meanwhile
			c.mu.Unlock()
			if w, stretched := c.window(); stretched && c.limits.flushWindow > 0 {
				if since := time.Since(lastWrite); since < w {
					wait(w - since)
				}
			}
			continue
		}
		c.flushing = !closing
		c.mu.Unlock()
		quietSince = time.Time{}
		if drop {
			clear(batch)
			batch = batch[:0]
		}
		if closing {
			c.finish(partial, control, batch, d)
			return
		}
		began := time.Now()
		err := c.flush(partial, control, batch)
		lastWrite = time.Now()
		c.mu.Lock()
		c.flushing = false
		c.lastWrite = lastWrite
		c.mu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The peer stopped reading: as slow a consumer as one
				// whose queue overflowed.
				c.writeTimedOut.Store(true)
			}
			c.abort()
			return
		}
		clear(batch) // let the written messages be collected
		clear(control)
		if c.limits.flushWindow > 0 {
			// A write that took a window (the peer reads slowly) was
			// window enough: what queued meanwhile goes next.
			if w, _ := c.window(); lastWrite.Sub(began) < w {
				wait(w - lastWrite.Sub(began))
			}
		}
	}
}

// writeBufs holds the buffers flushes assemble frames in, so that an idle
// connection holds none and a busy one reuses them.
var writeBufs = sync.Pool{New: func() any {
	fb := new(frameBuf)
	fb.writeNow = fb.write
	return fb
}}

// frameBuf is an io.Writer that appends to a byte slice, and the state of
// a direct write of it.
type frameBuf struct {
	b []byte
	// writeNow is fb.write, made once per buffer rather than per write.
	writeNow func(fd uintptr) bool
	n        int   // bytes of b written by writeNow
	err      error // writeNow's error
}

func (f *frameBuf) Write(p []byte) (int, error) {
	f.b = append(f.b, p...)
	return len(p), nil
}

// write is the function raw.Write calls with the socket: one write system
// call that does not wait for the socket to become writable (returning
// true tells the runtime not to wait either).
func (f *frameBuf) write(fd uintptr) bool {
	for len(f.b) > f.n {
		n, err := syscall.Write(int(fd), f.b[f.n:])
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			f.n += n
		}
		if err != nil || n <= 0 {
			f.err = err
			if err == nil {
				f.err = io.ErrShortWrite
			}
			break
		}
	}
	return true
}

// maxPooledBuf is the largest buffer returned to the pool.
const maxPooledBuf = 256 << 10

// putFrameBuf returns fb to the pool unless it grew too large to keep.
func putFrameBuf(fb *frameBuf) {
	if cap(fb.b) <= maxPooledBuf {
		fb.b = fb.b[:0]
		writeBufs.Put(fb)
	}
}

// flush writes the rest of a direct write, control frames, then the
// batch, with one write to the socket: the frames are assembled in a
// pooled buffer first, which costs a copy of a few bytes per message and
// saves a system call per 4 KiB.
func (c *conn) flush(partial []byte, control, batch [][]byte) error {
	fb := writeBufs.Get().(*frameBuf)
	defer putFrameBuf(fb)
	fb.b = append(fb.b, partial...)
	for _, f := range control {
		fb.b = append(fb.b, f...)
	}
	c.appendBatch(fb, batch)
	// Move the deadline only when half of it is used up: setting it costs
	// a runtime timer update, and a write never blocks for long unless the
	// peer stopped reading.
	if now := time.Now(); c.deadline.Sub(now) < c.limits.writeTimeout/2 {
		c.deadline = now.Add(c.limits.writeTimeout)
		if err := c.nc.SetWriteDeadline(c.deadline); err != nil {
			return err
		}
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
		fb.b = appendTextHeader(fb.b, size)
		for i, msg := range batch[:n] {
			if i > 0 {
				fb.b = append(fb.b, '\n')
			}
			fb.b = append(fb.b, msg...)
		}
		batch = batch[n:]
	}
}

// appendTextHeader appends the header of an unmasked, final text frame
// of size bytes.
func appendTextHeader(b []byte, size int) []byte {
	return wsframe.AppendServerHeader(b, ws.OpText, size)
}

// finish writes what is left, the disconnect push (full protocol) and the
// close frame, then half-closes the socket and bounds how long the read loop
// waits for the peer.
func (c *conn) finish(partial []byte, control, batch [][]byte, d protocol.Disconnect) {
	if c.format == hub.FormatProtocol && d != peerClosed {
		batch = append(batch, d.AppendPush(nil))
	}
	closeFrame, err := ws.CompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(d.Code), d.Reason)))
	if err == nil {
		control = append(control, closeFrame)
	}
	// Data first, then the close frame: write them in that order.
	if err := c.flush(partial, nil, batch); err == nil {
		_ = c.flush(nil, control, nil)
	}
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	c.mu.Lock()
	c.readDeadline = time.Now().Add(closeLinger)
	_ = c.nc.SetReadDeadline(c.readDeadline)
	c.finishLocked()
	c.mu.Unlock()
}

// finishLocked records that no writer will write again; c.mu is held.
func (c *conn) finishLocked() {
	c.writing = false
	c.finished = true
	c.queue, c.control, c.partial, c.kick = nil, nil, nil, nil
	if c.ping != nil {
		c.ping.Stop()
	}
	if c.writerDone != nil {
		close(c.writerDone)
	}
}

// extendReadDeadline gives the peer d more to send its next frame, unless the
// connection is closing (then the close linger deadline stays).
func (c *conn) extendReadDeadline(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
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
// (extendReadDeadline, or the close linger of a closing connection) is
// the socket's again when it returns.
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

// abort is the writer's answer to a failed write: the peer is gone or too
// slow; close the socket so that the read loop ends. A parked read loop
// is woken: a closed socket leaves the poller's set without an event.
func (c *conn) abort() {
	c.mu.Lock()
	c.closing = true
	c.finishLocked()
	wake := c.wakeReader
	c.mu.Unlock()
	_ = c.nc.Close()
	if wake != nil {
		wake()
	}
}
