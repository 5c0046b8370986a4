package websocket

import (
	"sync"
	"time"
)

// clockTick is the resolution of the flush clock.
const clockTick = time.Millisecond

// clockSlots bounds how far ahead the flush clock can wake a writer:
// waits are cut to clockSlots-1 ticks (callers re-check and wait again).
const clockSlots = 64

// flushClock wakes writers whose flush window ended. Writers due in the
// same tick share one channel, closed by one goroutine that runs only
// while someone waits: a thousand busy connections then cost the runtime
// a thousand wake-ups a second, not a timer per connection per window
// (which, armed and fired a quarter of a million times a second, cost as
// much CPU as the writes they spaced out).
type flushClock struct {
	mu      sync.Mutex
	epoch   time.Time
	done    uint64 // ticks whose channels are closed
	slots   [clockSlots]chan struct{}
	waiting int // slots with a channel
	running bool
}

var defaultClock = &flushClock{epoch: time.Now()}

// after returns a channel closed once at least d has passed (rounded up to
// the next tick, at most clockSlots-1 ticks).
func (fc *flushClock) after(d time.Duration) <-chan struct{} {
	n := uint64((d + clockTick - 1) / clockTick)
	n = min(max(n, 1), clockSlots-1)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	t := fc.tickAt(time.Now()) + n
	t = max(t, fc.done+1)
	slot := &fc.slots[t%clockSlots]
	if *slot == nil {
		*slot = make(chan struct{})
		fc.waiting++
	}
	if !fc.running {
		fc.running = true
		go fc.run()
	}
	return *slot
}

func (fc *flushClock) tickAt(now time.Time) uint64 {
	return uint64(now.Sub(fc.epoch) / clockTick)
}

// run closes the channels of the ticks that passed, every tick, until no
// one waits.
func (fc *flushClock) run() {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for now := range t.C {
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
