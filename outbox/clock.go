package outbox

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// clockTick is the resolution of the flush clock.
const clockTick = time.Millisecond

// clockSlots bounds how far ahead the flush clock can wake a writer:
// waits are cut to clockSlots-1 ticks (callers re-check and wait again).
const clockSlots = 64

// Clock wakes writers whose flush window ended. Writers due in the same
// tick share one channel, closed by one goroutine that runs only while
// someone waits: a thousand busy connections then cost the runtime a
// thousand wake-ups a second, not a timer per connection per window
// (which, armed and fired a quarter of a million times a second, cost as
// much CPU as the writes they spaced out).
//
// A node has one Clock for all its outboxes (Options.Clock). Its methods
// are safe for concurrent use. The zero value is not usable: call NewClock.
type Clock struct {
	// stretch is added to every flush window while the process is
	// saturated (see loadWatch).
	stretch atomic.Int64

	mu      sync.Mutex
	epoch   time.Time
	done    uint64 // ticks whose channels are closed
	slots   [clockSlots]chan struct{}
	waiting int // slots with a channel
	running bool
}

// NewClock returns a clock. Its goroutine runs only while a writer waits
// on it, so it needs no stopping.
func NewClock() *Clock { return &Clock{epoch: time.Now()} }

// Stretch returns how much longer than configured flush windows are now,
// because the process is saturated (see loadWatch).
func (fc *Clock) Stretch() time.Duration { return time.Duration(fc.stretch.Load()) }

// after returns a channel closed once at least d has passed (rounded up to
// the next tick, at most clockSlots-1 ticks).
func (fc *Clock) after(d time.Duration) <-chan struct{} {
	n := uint64((d + clockTick - 1) / clockTick)
	n = min(max(n, 1), clockSlots-1)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	now := fc.tickAt(time.Now())
	if !fc.running {
		// Nobody waits: the ticks since the clock stopped need no
		// closing (and would wrap around the slots).
		fc.done = max(fc.done, now)
		fc.running = true
		go fc.run()
	}
	// The slots hold the ticks done+1 … done+clockSlots-1: a later tick
	// would share a slot with an earlier one (when the clock lags).
	t := min(max(now+n, fc.done+1), fc.done+clockSlots-1)
	slot := &fc.slots[t%clockSlots]
	if *slot == nil {
		*slot = make(chan struct{})
		fc.waiting++
	}
	return *slot
}

func (fc *Clock) tickAt(now time.Time) uint64 {
	return uint64(now.Sub(fc.epoch) / clockTick)
}

// run closes the channels of the ticks that passed, every tick, until no
// one waits.
func (fc *Clock) run() {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	var load loadWatch
	for now := range t.C {
		if now.Sub(load.at) >= loadInterval {
			if cpu, ok := processCPU(); ok {
				load.update(&fc.stretch, now, cpu, runtime.GOMAXPROCS(0))
			}
		}
		fc.mu.Lock()
		for end := fc.tickAt(now); fc.done < end; {
			fc.done++
			if slot := &fc.slots[fc.done%clockSlots]; *slot != nil {
				close(*slot)
				*slot = nil
				fc.waiting--
			}
		}
		if fc.waiting == 0 {
			fc.running = false
			fc.mu.Unlock()
			return
		}
		fc.mu.Unlock()
	}
}

// The stretch of flush windows under load.
const (
	maxStretch   = 24 * time.Millisecond
	loadInterval = 25 * time.Millisecond
	// Windows grow while the process uses more than busyCPU of its
	// processors (GOMAXPROCS), and shrink while it uses less than
	// relaxedCPU.
	busyCPU    = 0.85
	relaxedCPU = 0.60
)

// loadWatch stretches flush windows while the process is saturated. A
// saturated process that writes each message alone spends its CPU on
// system calls and falls further behind (its goroutines wait to run,
// publishes wait for their broker, and fewer messages arrive per window);
// longer windows put more messages in each write until it keeps up again.
// Its CPU time, read every loadInterval, tells; windows grow fast and
// shrink slowly, so that latency returns to the configured window once
// the load is gone.
type loadWatch struct {
	at  time.Time
	cpu time.Duration
}

// update sets stretch from the process's CPU time cpu at now, with procs
// processors.
func (w *loadWatch) update(stretch *atomic.Int64, now time.Time, cpu time.Duration, procs int) {
	first := w.at.IsZero() || now.Sub(w.at) > 4*loadInterval // the clock was not running
	use := float64(cpu-w.cpu) / float64(now.Sub(w.at)) / float64(procs)
	w.at, w.cpu = now, cpu
	if first {
		return
	}
	st := time.Duration(stretch.Load())
	switch {
	case use > busyCPU:
		st = min(st*3/2+clockTick, maxStretch)
	case use < relaxedCPU:
		st = st * 3 / 4
		if st < clockTick {
			st = 0
		}
	}
	stretch.Store(int64(st))
}
