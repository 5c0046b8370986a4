package websocket

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcast/redcast/hub"
)

func TestFlushClockAfter(t *testing.T) {
	fc := &flushClock{epoch: time.Now()}
	start := time.Now()
	<-fc.after(3 * time.Millisecond)
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Fatalf("after(3ms) fired after %v", d)
	}
	<-fc.after(time.Hour) // waits are cut to clockSlots-1 ticks
}

// TestLoadWatch drives the stretch with made-up CPU times: it grows to
// maxStretch while the process is busy and returns to zero once it is not.
func TestLoadWatch(t *testing.T) {
	var (
		w       loadWatch
		stretch atomic.Int64
		now     = time.Now()
		cpu     time.Duration
	)
	step := func(use float64) {
		now = now.Add(loadInterval)
		cpu += time.Duration(use * float64(loadInterval))
		w.update(&stretch, now, cpu, 1)
	}
	step(0) // the first reading only sets the baseline
	for range 20 {
		step(0.95)
	}
	if got := time.Duration(stretch.Load()); got != maxStretch {
		t.Fatalf("stretch after 0.5s at 95%% CPU = %v, want %v", got, maxStretch)
	}
	for range 5 {
		step(0.7) // between the thresholds: held
	}
	if got := time.Duration(stretch.Load()); got != maxStretch {
		t.Fatalf("stretch at 70%% CPU = %v, want it held at %v", got, maxStretch)
	}
	for range 20 {
		step(0.3)
	}
	if got := stretch.Load(); got != 0 {
		t.Fatalf("stretch after 0.5s at 30%% CPU = %v, want 0", time.Duration(got))
	}
}

// TestQueueEighthFullEndsWindow checks that a queue an eighth full is
// written without waiting for the rest of a long flush window, so that the
// window never makes a slow consumer of a client that reads.
func TestQueueEighthFullEndsWindow(t *testing.T) {
	cc := &countConn{}
	c := newConn(cc, hub.FormatProtocol, limits{
		maxMessages: 16, maxBytes: 1 << 20,
		writeTimeout: time.Second, pingInterval: time.Hour, flushWindow: time.Hour,
	})
	defer func() {
		c.Close(peerClosed)
		<-c.done()
	}()
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for cc.msgs.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d messages written, want %d", cc.msgs.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	c.Send(benchMsg) // the first goes out at once; the writer then waits its window
	waitFor(1)
	c.Send(benchMsg)
	time.Sleep(10 * time.Millisecond)
	if got := cc.msgs.Load(); got != 1 {
		t.Fatalf("%d messages written during the window, want 1", got)
	}
	c.Send(benchMsg) // 2 of 16 queued: an eighth
	waitFor(3)
}
