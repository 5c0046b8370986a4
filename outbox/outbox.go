package outbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/redcast/redcast/protocol"
)

// Sink is what a transport gives an outbox: the bytes of its frames or
// events, and the writes. The outbox calls it from one goroutine at a
// time, never while it holds its lock.
type Sink interface {
	// AppendFrames appends msgs, in order, to dst as the transport writes
	// them (WebSocket frames, SSE events), and returns the extended slice.
	AppendFrames(dst []byte, msgs [][]byte) []byte
	// AppendClose appends what ends the stream for d (a disconnect push, a
	// close frame), and returns the extended slice.
	AppendClose(dst []byte, d protocol.Disconnect) []byte
	// Write writes b to the peer, bounded by the transport's write
	// timeout. An error wrapping os.ErrDeadlineExceeded means the peer
	// stopped reading: a slow consumer.
	Write(b []byte) error
	// Finish is called once, at the end: err is nil after the end was
	// written (Close; the outbox may still have ended as a slow consumer,
	// see Outbox.Err), or says why the outbox gave up on the peer (a failed
	// write, Abort). The transport half-closes or closes its connection and
	// lets its reader see that.
	Finish(err error)
}

// TryWriter is a Sink that can also write without waiting: TryWrite writes
// as much of b as the socket takes at once and returns how much that was.
// An outbox whose sink is a TryWriter writes a quiet connection from the
// goroutine that flushes it (see Flush) instead of waking a writer.
type TryWriter interface {
	TryWrite(b []byte) (int, error)
}

// ErrSlowConsumer is why an outbox ended when its queue overflowed (the
// owner closed it with protocol.DisconnectSlowConsumer) or a write did not
// finish within the transport's write timeout.
var ErrSlowConsumer = errors.New("outbox: slow consumer")

// Defaults of Options.
const (
	DefaultMaxMessages = 1024
	DefaultMaxBytes    = 1 << 20
)

// Options configure an outbox. The zero value means the defaults.
type Options struct {
	// MaxMessages and MaxBytes bound the queue: a Push beyond either
	// fails, and the owner closes the outbox as a slow consumer. Defaults
	// DefaultMaxMessages and DefaultMaxBytes.
	MaxMessages int
	MaxBytes    int
	// FlushWindow is how long the writer of a connection that receives a
	// steady stream gathers messages between two writes: the first
	// message after a quiet spell goes out at once, later ones wait at
	// most this long (longer while Clock says the process is saturated).
	// Zero or negative: write as soon as possible.
	FlushWindow time.Duration
	// Clock times flush windows; one Clock serves all the outboxes of a
	// node. Nil: each wait uses a timer of its own.
	Clock *Clock
}

// DirectFanout is the most outboxes one Batch.Flush writes from the
// flushing goroutine; a broadcast to more wakes their writers, which run on
// every core and do not hold up the broadcaster.
const DirectFanout = 16

// writerLinger is how long a writer waits for more once the queue is
// empty before it ends: long enough that a connection receiving a stream
// in bursts keeps its writer, short enough that idle ones have none.
const writerLinger = 250 * time.Millisecond

// maxPooledBuf is the largest write buffer returned to the pool.
const maxPooledBuf = 256 << 10

// phase is where an outbox is in its life.
type phase uint8

const (
	phaseOpen    phase = iota // Push queues
	phaseClosing              // Close was called: the writer writes the end
	phaseDone                 // nothing more is written; the writer calls Finish
)

// writerState is what the outbox's writer goroutine does.
type writerState uint8

const (
	// writerNone: no writer runs (an idle connection has none).
	writerNone writerState = iota
	// writerIdle: the writer waits for messages until writerLinger ends,
	// or, while a flusher writes directly, for that write to end (the
	// flusher kicks it); the next Push wakes it (or a Flush writes
	// directly).
	writerIdle
	// writerWindow: the writer waits for its flush window to end (or was
	// just woken) and then writes what is queued; a Push needs no wake.
	writerWindow
	// writerBusy: the writer writes, outside the lock.
	writerBusy
)

// Outbox is the outbound side of one connection: a queue bounded in
// messages and bytes, and the writes that empty it. Messages are written in
// the order they were pushed, coalesced by the sink into as few frames and
// writes as it can. A writer goroutine runs only while there is something
// to write; a quiet connection is written by the goroutine that flushes it
// (see Flush), with a write that never waits. Nothing writes to the peer
// while a lock is held, the outbox's own included: whoever writes owns the
// right to (the writer in writerBusy, a flusher in direct) and lets go of
// the lock first.
//
// Push, Close and Abort never block and do no I/O: call them under any
// lock. Flush and Release may write: call them holding no lock. All
// methods are safe for concurrent use.
type Outbox struct {
	sink Sink
	try  TryWriter // nil when the sink cannot write without waiting
	opts Options

	mu     sync.Mutex
	phase  phase
	writer writerState
	// direct is true while a Flush writes outside mu: nobody else writes.
	direct bool
	// held is true between Hold and Release: the holder writes what is
	// queued meanwhile when it releases.
	held bool
	// pending is true while the outbox waits in a Batch for its flush.
	pending bool
	// finished is set when the writer calls Finish; ended when it returned.
	finished, ended bool

	queue   [][]byte
	queued  int      // bytes in queue
	control [][]byte // raw frames (pings, pongs) written before the queue
	// partial is the unwritten rest of a direct write that the socket did
	// not take whole; the writer writes it before anything else.
	partial  []byte
	closeMsg protocol.Disconnect
	drop     bool  // Close with a slow consumer: the queue is not written
	err      error // why the outbox ended (phaseDone)
	wroteEnd bool  // the end Close asked for was written
	// lastWrite is when data was last written; the flush window runs
	// from it.
	lastWrite time.Time
	// kick (cap 1) ends the writer's wait; nil while no writer runs.
	kick chan struct{}
	// room is closed when the queue is emptied into a write or the
	// outbox ends: WaitRoom waits for it; nil while nobody waits.
	room chan struct{}
	// done is closed once the writer called Finish; made on demand.
	done chan struct{}
}

// New returns an outbox writing to sink.
func New(sink Sink, opts Options) *Outbox {
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	o := &Outbox{sink: sink, opts: opts}
	o.try, _ = sink.(TryWriter)
	return o
}

// Push queues msg, which the outbox keeps until it is written (the caller
// must not change it). It returns false only when the queue is full: the
// caller then closes the outbox as a slow consumer. A message pushed to an
// outbox that is closing or ended is dropped (true): the connection is
// going away. One message larger than MaxBytes is taken when the queue is
// empty (a big reply). It wakes the writer when one is needed; to write a
// quiet connection from the calling goroutine instead, push through a
// Batch.
func (o *Outbox) Push(msg []byte) bool { return o.push(msg, true, nil) }

// PushReply is Push for a reply to the client's own command: MaxBytes does
// not bound it (a history reply may be large), only MaxMessages. The
// reader paces such replies itself (Crowded, WaitRoom), so they cannot
// pile up.
func (o *Outbox) PushReply(msg []byte) bool { return o.push(msg, false, nil) }

// push queues msg and, when the outbox needs a flush (no writer is at work
// or about to be, and no holder or flusher will write it), adds it to b
// for b's owner to flush, or without a Batch wakes the writer: one lock
// either way. bytes applies MaxBytes. It reports false when the queue is
// full.
func (o *Outbox) push(msg []byte, bytes bool, b *Batch) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.phase != phaseOpen {
		return true
	}
	if len(o.queue) >= o.opts.MaxMessages || bytes && len(o.queue) > 0 && o.queued+len(msg) > o.opts.MaxBytes {
		return false
	}
	o.queue = append(o.queue, msg)
	o.queued += len(msg)
	// An eighth full: no flush window or hold may make a slow consumer
	// of a client that reads.
	eighth := len(o.queue) == o.opts.MaxMessages/8 ||
		o.queued-len(msg) < o.opts.MaxBytes/8 && o.queued >= o.opts.MaxBytes/8
	switch {
	case o.direct:
		// The flusher starts the writer for what queued meanwhile.
	case o.writer == writerWindow || o.writer == writerBusy:
		if eighth {
			o.kickLocked()
		}
	case o.held, o.pending:
		// The holder, or the goroutine whose Batch holds the outbox,
		// flushes it later; an eighth full does not wait for them.
		if eighth {
			o.wakeLocked()
		}
	case b != nil:
		// The Batch's owner flushes it once it holds no lock.
		o.pending = true
		b.list = append(b.list, o) // b is the calling goroutine's
	default:
		o.wakeLocked()
	}
	return true
}

// PushControl queues a raw frame (a ping, a pong) to be written ahead of
// the queue. At most 8 wait at a time; more are dropped.
func (o *Outbox) PushControl(frame []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.phase == phaseOpen && len(o.control) < 8 {
		o.control = append(o.control, frame)
		o.wakeLocked()
	}
}

// Hold makes what is pushed wait for Release, which writes it together,
// rather than waking the writer for each message: the client holds its
// outbox while it handles the frames its transport has read, so that
// their replies go out in one write. A writer already at work still
// writes what it finds, and a queue an eighth full wakes it.
func (o *Outbox) Hold() {
	o.mu.Lock()
	o.held = true
	o.mu.Unlock()
}

// Release ends a Hold and flushes what is queued (see Flush).
func (o *Outbox) Release() {
	o.mu.Lock()
	o.held = false
	o.mu.Unlock()
	o.Flush()
}

// Flush writes what is queued. When the connection is quiet (no writer at
// work, the flush window over, nothing half-written) and the sink is a
// TryWriter, it writes from the calling goroutine with one write that
// never waits, leaving what the socket does not take to the writer;
// otherwise it wakes the writer. It does nothing while the outbox is held
// (Release flushes) or a writer is at work. Call it holding no lock.
func (o *Outbox) Flush() {
	o.mu.Lock()
	o.pending = false
	if o.phase != phaseOpen || o.held || o.direct || o.writer >= writerWindow ||
		len(o.queue) == 0 && len(o.control) == 0 && len(o.partial) == 0 {
		o.mu.Unlock()
		return
	}
	if o.try == nil || len(o.partial) > 0 || !o.windowOverLocked() {
		o.wakeLocked()
		o.mu.Unlock()
		return
	}
	o.direct = true
	batch, control := o.queue, o.control
	o.queue, o.control, o.queued = nil, nil, 0
	o.roomLocked()
	o.mu.Unlock()

	buf := writeBufs.Get().(*[]byte)
	b := appendAll((*buf)[:0], nil, control, batch, o.sink)
	n, err := o.try.TryWrite(b)
	if errors.Is(err, syscall.EAGAIN) {
		err = nil
	}

	o.mu.Lock()
	o.direct = false
	o.lastWrite = time.Now()
	clear(batch) // let the written messages be collected
	if o.queue == nil {
		o.queue = batch[:0] // keep the slice for the next burst
	}
	switch {
	case err != nil:
		o.failLocked(err)
	case n < len(b):
		o.partial = append(o.partial, b[n:]...)
	}
	if len(o.queue) > 0 || len(o.control) > 0 || len(o.partial) > 0 || o.phase != phaseOpen {
		o.wakeLocked()
	} else if o.writer == writerIdle {
		o.kickLocked() // it waited for this write to end
	}
	o.mu.Unlock()
	putBuf(buf, b)
}

// wake makes sure a writer will write what is queued, without writing
// from the calling goroutine.
func (o *Outbox) wake() {
	o.mu.Lock()
	o.pending = false
	if o.phase != phaseOpen || !o.held && !o.direct {
		o.wakeLocked()
	}
	o.mu.Unlock()
}

// Close ends the outbox with d: the writer writes what is queued (nothing
// when d is protocol.DisconnectSlowConsumer: a slow consumer would not read
// it), then the end the sink appends for d, and calls Finish. The first
// call wins; later ones do nothing. It never blocks.
func (o *Outbox) Close(d protocol.Disconnect) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.phase != phaseOpen {
		return
	}
	o.phase = phaseClosing
	o.closeMsg = d
	o.drop = d == protocol.DisconnectSlowConsumer
	o.wakeLocked()
	o.kickLocked() // out of a flush window's wait
}

// Abort ends the outbox at once, writing nothing more: the peer is gone.
// Finish is called with err. It never blocks (a write under way ends on
// its own).
func (o *Outbox) Abort(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.phase != phaseDone {
		o.failLocked(err)
		o.wakeLocked()
		o.kickLocked()
	}
}

// Done returns a channel closed once the outbox ended and Finish returned.
func (o *Outbox) Done() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done == nil {
		o.done = make(chan struct{})
		if o.ended {
			close(o.done)
		}
	}
	return o.done
}

// Closing reports whether the outbox was closed or ended: nothing pushed
// now is written.
func (o *Outbox) Closing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.phase != phaseOpen
}

// Err returns why the outbox ended: nil while it runs or when it was
// closed and written to the end, ErrSlowConsumer for a slow consumer, or
// the error of a failed write or of Abort.
func (o *Outbox) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// failLocked ends the outbox with err, dropping what is queued; o.mu is
// held. The writer, woken by the caller, calls Finish.
func (o *Outbox) failLocked(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: %w", ErrSlowConsumer, err)
	}
	o.phase = phaseDone
	o.err = err
	clear(o.queue)
	o.queue, o.control, o.partial, o.queued = nil, nil, nil, 0
	o.roomLocked()
}

// roomLocked wakes WaitRoom: the queue was emptied, or the outbox ended;
// o.mu is held.
func (o *Outbox) roomLocked() {
	if o.room != nil {
		close(o.room)
		o.room = nil
	}
}

// Crowded reports whether the queue is half full (in messages or bytes):
// a reader that produces replies should then wait for room (WaitRoom)
// before it handles more of its peer's commands.
func (o *Outbox) Crowded() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.crowdedLocked()
}

func (o *Outbox) crowdedLocked() bool {
	return len(o.queue) > 0 && (len(o.queue) >= o.opts.MaxMessages/2 || o.queued >= o.opts.MaxBytes/2)
}

// WaitRoom is the backpressure of a client's own commands on its reading:
// the read loop calls it (holding no lock) while Crowded, and it writes
// what is queued (ending a Hold, which it takes again before it returns)
// and waits until the queue is no longer crowded, the outbox ends, or stop
// closes. It reports whether the outbox is still open. It waits at most
// about the sink's write timeout: a peer that does not read makes the
// write fail, which ends the outbox as a slow consumer. It may write (it
// flushes): call it holding no lock.
func (o *Outbox) WaitRoom(stop <-chan struct{}) bool {
	o.mu.Lock()
	held := o.held
	o.held = false
	o.mu.Unlock()
	o.Flush()
	o.mu.Lock()
	defer func() {
		o.held = held
		o.mu.Unlock()
	}()
	for o.phase == phaseOpen && o.crowdedLocked() {
		if o.room == nil {
			o.room = make(chan struct{})
		}
		room := o.room
		o.wakeLocked()
		o.kickLocked() // out of a flush window: this queue is urgent
		o.mu.Unlock()
		select {
		case <-room:
		case <-stop:
			o.mu.Lock()
			return o.phase == phaseOpen
		}
		o.mu.Lock()
	}
	return o.phase == phaseOpen
}

// wakeLocked starts the writer unless it runs, and ends its wait when it
// waits for messages; o.mu is held.
func (o *Outbox) wakeLocked() {
	switch o.writer {
	case writerNone:
		if o.finished {
			return
		}
		o.writer = writerWindow
		o.kick = make(chan struct{}, 1)
		go o.run(o.kick)
	case writerIdle:
		o.writer = writerWindow
		o.kickLocked()
	}
}

// kickLocked ends the writer's current or next wait; o.mu is held.
func (o *Outbox) kickLocked() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// window returns the flush window now: the configured one, stretched
// while the process is saturated.
func (o *Outbox) window() time.Duration {
	if o.opts.FlushWindow <= 0 {
		return 0
	}
	if o.opts.Clock != nil {
		return o.opts.FlushWindow + o.opts.Clock.Stretch()
	}
	return o.opts.FlushWindow
}

// windowOverLocked reports whether the flush window since the last write
// is over; o.mu is held.
func (o *Outbox) windowOverLocked() bool {
	w := o.window()
	return w <= 0 || time.Since(o.lastWrite) >= w
}

// wait waits d, or until kicked.
func (o *Outbox) wait(kick <-chan struct{}, d time.Duration) {
	if o.opts.Clock != nil {
		select {
		case <-o.opts.Clock.after(d):
		case <-kick:
		}
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-kick:
	}
}

// run is the writer. It writes what is queued, at most once per flush
// window while messages keep coming, until the queue stays empty for
// writerLinger or the outbox ends; ending, it writes the end and calls
// Finish.
func (o *Outbox) run(kick <-chan struct{}) {
	var (
		batch, control [][]byte
		partial        []byte
		quietSince     time.Time
	)
	o.mu.Lock()
	if w := o.window(); w > 0 && time.Since(o.lastWrite) < w {
		// Started right after a write: gather for the rest of its window.
		o.mu.Unlock()
		o.wait(kick, w-time.Since(o.lastWrite))
		o.mu.Lock()
	}
	for {
		// o.mu is held here.
		if o.phase == phaseDone && !o.direct {
			o.end()
			return
		}
		if o.direct {
			// A flusher writes; it kicks the writer when it is done.
			o.writer = writerIdle
			o.mu.Unlock()
			<-kick
			o.mu.Lock()
			continue
		}
		closing := o.phase == phaseClosing
		if !closing && len(o.queue) == 0 && len(o.control) == 0 && len(o.partial) == 0 {
			now := time.Now()
			if quietSince.IsZero() {
				quietSince = now
			}
			if now.Sub(quietSince) >= writerLinger {
				// Stop, and hold no buffers while idle.
				o.writer = writerNone
				o.queue, o.control, o.partial, o.kick = nil, nil, nil, nil
				o.mu.Unlock()
				return
			}
			o.writer = writerIdle
			o.mu.Unlock()
			o.wait(kick, writerLinger-now.Sub(quietSince))
			o.mu.Lock()
			if o.writer == writerIdle {
				continue // the linger passed, or a flusher's write ended
			}
			// Woken by a push: at most one write per window, counted
			// from the last write (a direct one, maybe).
			if w := o.window(); w > 0 {
				if since := time.Since(o.lastWrite); since < w {
					o.mu.Unlock()
					o.wait(kick, w-since)
					o.mu.Lock()
				}
			}
			continue
		}
		batch, o.queue = o.queue, batch[:0]
		control, o.control = o.control, control[:0]
		partial, o.partial = o.partial, partial[:0]
		o.queued = 0
		o.roomLocked()
		d, drop := o.closeMsg, o.drop
		o.writer = writerBusy
		o.mu.Unlock()

		quietSince = time.Time{}
		if drop {
			clear(batch)
			batch = batch[:0]
		}
		began := time.Now()
		err := o.write(partial, control, batch, closing, d)
		clear(batch) // let the written messages be collected
		clear(control)

		o.mu.Lock()
		o.lastWrite = time.Now()
		o.writer = writerWindow
		switch {
		case closing:
			o.wroteEnd = err == nil
			if err == nil && drop {
				err = ErrSlowConsumer
			}
			o.failLocked(err)
			continue
		case err != nil:
			o.failLocked(err)
			continue
		case o.phase == phaseDone:
			continue // aborted while it wrote
		}
		if w := o.window(); w > 0 {
			// A write that took a window (the peer reads slowly) was
			// window enough: what queued meanwhile goes next.
			if took := o.lastWrite.Sub(began); took < w {
				o.mu.Unlock()
				o.wait(kick, w-took)
				o.mu.Lock()
			}
		}
	}
}

// end calls Finish and closes done: the writer's last act. o.mu is held
// on entry and released.
func (o *Outbox) end() {
	o.finished = true
	o.writer = writerNone
	o.queue, o.control, o.partial, o.kick = nil, nil, nil, nil
	err := o.err
	if o.wroteEnd {
		err = nil
	}
	o.mu.Unlock()
	o.sink.Finish(err)
	o.mu.Lock()
	o.ended = true
	if o.done != nil {
		close(o.done)
	}
	o.mu.Unlock()
}

// write writes the rest of a direct write, control frames, then the batch
// (and the end, when closing) with one write.
func (o *Outbox) write(partial []byte, control, batch [][]byte, closing bool, d protocol.Disconnect) error {
	buf := writeBufs.Get().(*[]byte)
	b := appendAll((*buf)[:0], partial, control, batch, o.sink)
	if closing {
		b = o.sink.AppendClose(b, d)
	}
	var err error
	if len(b) > 0 {
		err = o.sink.Write(b)
	}
	putBuf(buf, b)
	return err
}

// appendAll assembles one write: the rest of a direct write, control
// frames, then the batch as the sink's frames. It costs a copy of a few
// bytes per message and saves a system call per message.
func appendAll(b, partial []byte, control, batch [][]byte, sink Sink) []byte {
	b = append(b, partial...)
	for _, f := range control {
		b = append(b, f...)
	}
	if len(batch) > 0 {
		b = sink.AppendFrames(b, batch)
	}
	return b
}

// writeBufs holds the buffers writes are assembled in, so that an idle
// connection holds none and a busy one reuses them.
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// putBuf returns a write buffer (grown to b) to the pool unless it grew too
// large to keep.
func putBuf(buf *[]byte, b []byte) {
	if cap(b) <= maxPooledBuf {
		*buf = b[:0]
		writeBufs.Put(buf)
	}
}
