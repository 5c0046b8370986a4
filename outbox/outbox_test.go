package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink records what an outbox writes: messages joined by '\n' per
// AppendFrames call, each call's frames as one "write".
type sink struct {
	tryable bool
	// block, when set, makes Write wait until it is closed.
	block chan struct{}
	fail  error

	mu       sync.Mutex
	writes   []string // every Write or TryWrite, in order
	direct   int      // TryWrites
	finished []error
	fin      chan struct{}
}

func newSink(tryable bool) *sink { return &sink{tryable: tryable, fin: make(chan struct{})} }

func (s *sink) AppendFrames(dst []byte, msgs [][]byte) []byte {
	return append(dst, bytes.Join(msgs, []byte("\n"))...)
}

func (s *sink) AppendClose(dst []byte, d protocol.Disconnect) []byte {
	return fmt.Appendf(dst, "|close %d", d.Code)
}

func (s *sink) Write(b []byte) error {
	if s.block != nil {
		<-s.block
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.writes = append(s.writes, string(b))
	return nil
}

func (s *sink) Finish(err error) {
	s.mu.Lock()
	s.finished = append(s.finished, err)
	s.mu.Unlock()
	close(s.fin)
}

// trySink is a sink that can write without waiting.
type trySink struct{ *sink }

func (s trySink) TryWrite(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.direct++
	s.writes = append(s.writes, string(b))
	return len(b), nil
}

func (s *sink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.writes, "/")
}

func closeAndWait(t *testing.T, o *Outbox) {
	t.Helper()
	o.Close(protocol.DisconnectShutdown)
	waitDone(t, o)
}

// waitDone waits until o ended, failing the test rather than hanging.
func waitDone(t *testing.T, o *Outbox) {
	t.Helper()
	select {
	case <-o.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("outbox did not end")
	}
}

func TestFlushWritesDirectly(t *testing.T) {
	s := newSink(true)
	o := New(trySink{s}, Options{FlushWindow: time.Hour})
	b := GetBatch()
	defer PutBatch(b)
	if !b.Push(o, []byte("a")) || b.Len() != 1 {
		t.Fatalf("push: len %d, want the outbox kept for a flush", b.Len())
	}
	b.Flush()
	if got := s.all(); got != "a" || s.direct != 1 {
		t.Fatalf("after flush: writes %q (%d direct), want one direct write of a", got, s.direct)
	}
	// Within the window the next one waits for the writer, which gathers.
	b.Push(o, []byte("b"))
	b.Push(o, []byte("c"))
	b.Flush()
	if got := s.all(); got != "a" {
		t.Fatalf("within the window: writes %q, want nothing new yet", got)
	}
	closeAndWait(t, o)
	if got := s.all(); got != "a/b\nc|close 3001" {
		t.Fatalf("writes %q", got)
	}
}

func TestWriterCoalesces(t *testing.T) {
	s := newSink(false)
	s.block = make(chan struct{})
	o := New(s, Options{})
	o.Push([]byte("1")) // the writer takes it and blocks in Write
	wait.For(t, "the writer to take the first", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.writer == writerBusy
	})
	for _, m := range []string{"2", "3", "4"} {
		if !o.Push([]byte(m)) {
			t.Fatal("push failed")
		}
	}
	o.Close(protocol.DisconnectShutdown)
	close(s.block)
	waitDone(t, o)
	if got := s.all(); got != "1/2\n3\n4|close 3001" {
		t.Fatalf("writes %q, want the three queued meanwhile in one write", got)
	}
}

func TestQueueBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		msg  string
		n    int
		// written is what the writer took before the queue filled: a
		// queue an eighth full wakes the writer even while held, so the
		// first message of the bytes case goes to a writer that then
		// blocks in Write, and the queue fills behind it.
		written string
	}{
		{"messages", Options{MaxMessages: 4, MaxBytes: 1 << 20}, "x", 4, ""},
		{"bytes", Options{MaxMessages: 100, MaxBytes: 10}, "abc", 3, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(false)
			s.block = make(chan struct{})
			o := New(s, tc.opts)
			o.Hold() // nothing is written meanwhile, but what an eighth wakes
			if tc.written != "" {
				o.Push([]byte(tc.written))
				wait.For(t, "the writer to take the first", func() bool {
					o.mu.Lock()
					defer o.mu.Unlock()
					return o.writer == writerBusy && len(o.queue) == 0
				})
			}
			for i := range tc.n {
				if !o.Push([]byte(tc.msg)) {
					t.Fatalf("push %d refused", i)
				}
			}
			if o.Push([]byte(tc.msg)) {
				t.Fatal("push past the bound accepted")
			}
			o.Close(protocol.DisconnectSlowConsumer)
			close(s.block)
			waitDone(t, o)
			want := "|close 3002"
			if tc.written != "" {
				want = tc.written + "/" + want
			}
			if got := s.all(); got != want {
				t.Fatalf("writes %q: a slow consumer's queue must be dropped", got)
			}
			if !errors.Is(o.Err(), ErrSlowConsumer) || s.finished[0] != nil {
				t.Fatalf("err %v, finished %v: want ErrSlowConsumer, and the end written", o.Err(), s.finished)
			}
		})
	}
}

func TestWriteTimeoutIsSlowConsumer(t *testing.T) {
	s := newSink(false)
	s.fail = fmt.Errorf("write: %w", os.ErrDeadlineExceeded)
	o := New(s, Options{})
	o.Push([]byte("x"))
	waitDone(t, o)
	if !errors.Is(o.Err(), ErrSlowConsumer) {
		t.Fatalf("err %v, want ErrSlowConsumer", o.Err())
	}
	if !o.Push([]byte("y")) {
		t.Fatal("a push after the end must be dropped, not refused as a full queue")
	}
}

func TestHoldRelease(t *testing.T) {
	s := newSink(true)
	o := New(trySink{s}, Options{})
	o.Hold()
	o.Push([]byte("r1"))
	o.Push([]byte("r2"))
	b := GetBatch()
	b.Push(o, []byte("p"))
	if b.Len() != 0 {
		t.Fatal("a held outbox was kept for a broadcast's flush")
	}
	PutBatch(b)
	if got := s.all(); got != "" {
		t.Fatalf("written while held: %q", got)
	}
	o.Release()
	if got := s.all(); got != "r1\nr2\np" || s.direct != 1 {
		t.Fatalf("after release: %q (%d direct), want one direct write", got, s.direct)
	}
	closeAndWait(t, o)
}

// TestEighthEndsWindow checks that a queue an eighth full is written
// without waiting for the rest of a long flush window, so that the window
// never makes a slow consumer of a client that reads.
func TestEighthEndsWindow(t *testing.T) {
	s := newSink(false)
	o := New(s, Options{MaxMessages: 16, FlushWindow: time.Hour, Clock: NewClock()})
	o.Push([]byte("first")) // at once: the writer then waits its window
	wait.For(t, "the first write", func() bool { return s.all() == "first" })
	o.Push([]byte("2"))
	if got := s.all(); got != "first" {
		t.Fatalf("writes %q: want the second to wait for the window", got)
	}
	o.Push([]byte("3")) // two of 16: an eighth
	wait.For(t, "the eighth to end the window", func() bool { return s.all() == "first/2\n3" })
	closeAndWait(t, o)
}

func TestAbort(t *testing.T) {
	s := newSink(false)
	o := New(s, Options{})
	o.Hold()
	o.Push([]byte("x"))
	errGone := errors.New("gone")
	o.Abort(errGone)
	waitDone(t, o)
	if got := s.all(); got != "" || !errors.Is(s.finished[0], errGone) || len(s.finished) != 1 {
		t.Fatalf("writes %q, finished %v", got, s.finished)
	}
	o.Close(protocol.DisconnectShutdown) // no effect after the end
	o.Abort(errGone)
}

// TestConcurrent pushes, flushes, holds and closes from many goroutines at
// once (run with -race): every message pushed before Close is written once,
// in order per pusher, and Finish runs once.
func TestConcurrent(t *testing.T) {
	for round := range 20 {
		s := newSink(round%2 == 0)
		var sk Sink = s
		if s.tryable {
			sk = trySink{s}
		}
		o := New(sk, Options{MaxMessages: 1 << 20, MaxBytes: 1 << 30, FlushWindow: time.Duration(round%3) * time.Millisecond, Clock: NewClock()})
		var wg sync.WaitGroup
		const pushers, each = 4, 200
		for p := range pushers {
			wg.Go(func() {
				b := GetBatch()
				defer PutBatch(b)
				for i := range each {
					msg := fmt.Appendf(nil, "%d.%d", p, i)
					switch i % 3 {
					case 0:
						o.Push(msg)
					case 1:
						b.Push(o, msg)
						b.Flush()
					default:
						o.Hold()
						o.Push(msg)
						o.Release()
					}
				}
			})
		}
		wg.Wait()
		closeAndWait(t, o)
		var got []string
		for _, w := range s.writes {
			w, _, _ = strings.Cut(w, "|")
			for _, m := range strings.Split(w, "\n") {
				if len(m) > 0 {
					got = append(got, m)
				}
			}
		}
		if len(got) != pushers*each {
			t.Fatalf("round %d: %d messages written, want %d", round, len(got), pushers*each)
		}
		next := make(map[int]int)
		for _, m := range got {
			var p, i int
			if _, err := fmt.Sscanf(m, "%d.%d", &p, &i); err != nil || next[p] != i {
				t.Fatalf("round %d: %q out of order (want %d.%d)", round, m, p, next[p])
			}
			next[p]++
		}
		if len(s.finished) != 1 {
			t.Fatalf("Finish ran %d times", len(s.finished))
		}
	}
}

// TestWaitRoom: WaitRoom on a crowded outbox returns once the queue was
// taken into a write; on an ended outbox it returns false at once.
func TestWaitRoom(t *testing.T) {
	s := newSink(false)
	s.block = make(chan struct{})
	o := New(s, Options{MaxMessages: 8})
	o.Hold()
	o.Push([]byte("first")) // an eighth: the writer takes it and blocks
	wait.For(t, "the writer to take the first", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.writer == writerBusy
	})
	for range 4 {
		o.Push([]byte("r"))
	}
	if !o.Crowded() {
		t.Fatal("4 of 8 queued: want crowded")
	}
	go func() { close(s.block) }()
	if !o.WaitRoom(nil) {
		t.Fatal("WaitRoom on an open outbox returned false")
	}
	if o.Crowded() {
		t.Fatal("crowded after WaitRoom")
	}
	wait.For(t, "the replies written", func() bool { return s.all() == "first/r\nr\nr\nr" })
	o.Abort(errors.New("gone"))
	if o.WaitRoom(nil) {
		t.Fatal("WaitRoom on an ended outbox returned true")
	}
	waitDone(t, o)
}

// TestPendingOutboxStillWakesWhenCrowded: an outbox kept in another
// goroutine's Batch (which may be flushed late) is still written once an
// eighth of its queue waits, instead of filling up.
func TestPendingOutboxStillWakesWhenCrowded(t *testing.T) {
	s := newSink(false)
	o := New(s, Options{MaxMessages: 64})
	b := GetBatch()
	defer PutBatch(b)
	b.Push(o, []byte("m"))
	for range 100 {
		if !o.Push([]byte("m")) {
			t.Fatal("queue full: the pending outbox was never woken")
		}
		wait.For(t, "the queue to drain", func() bool { return !o.Crowded() })
	}
	b.Wake()
	closeAndWait(t, o)
}

// TestOneBigMessage: a message larger than MaxBytes is taken when the queue
// is empty (a big reply), and refused behind others.
func TestOneBigMessage(t *testing.T) {
	s := newSink(false)
	s.block = make(chan struct{})
	o := New(s, Options{MaxBytes: 8})
	o.Push([]byte("f")) // the writer takes it and blocks: the queue stays as pushed below
	wait.For(t, "the writer to take the first", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.writer == writerBusy
	})
	if !o.Push([]byte("0123456789")) {
		t.Fatal("a big message refused on an empty queue")
	}
	if o.Push([]byte("x")) {
		t.Fatal("a message past MaxBytes accepted behind a big one")
	}
	o.Close(protocol.DisconnectShutdown)
	close(s.block)
	waitDone(t, o)
}

// TestTinyQueueNeverCrowdedWhenEmpty: with bounds of 1, an empty queue is
// not crowded, so WaitRoom returns at once.
func TestTinyQueueNeverCrowdedWhenEmpty(t *testing.T) {
	o := New(newSink(false), Options{MaxMessages: 1, MaxBytes: 1})
	if o.Crowded() {
		t.Fatal("an empty queue is crowded")
	}
	if !o.WaitRoom(nil) {
		t.Fatal("WaitRoom on an open outbox returned false")
	}
	closeAndWait(t, o)
}
