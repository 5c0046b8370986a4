package outbox

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestFlushClockAfter(t *testing.T) {
	fc := NewClock()
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
