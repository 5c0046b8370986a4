package brokertest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// Event is one call of a Recorder.
type Event struct {
	Kind string // "pub", "join" or "leave"
	Pub  *protocol.Publication
	Pos  protocol.StreamPosition
	Info *protocol.ClientInfo
}

// Recorder is an EventHandler that records every call per channel, for
// broker tests. It notes channels whose HandlePublication was entered twice
// at once. When Gate is set before use, the first HandlePublication waits
// until Gate is closed, as a stuck handler would. Safe for concurrent use.
type Recorder struct {
	Gate chan struct{}

	mu         sync.Mutex
	events     map[string][]Event
	inside     map[string]bool
	concurrent map[string]bool
	gated      bool
}

var _ broker.EventHandler = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{events: map[string][]Event{}, inside: map[string]bool{}, concurrent: map[string]bool{}}
}

// HandlePublication implements broker.EventHandler.
func (r *Recorder) HandlePublication(_ context.Context, ch string, pub *protocol.Publication, pos protocol.StreamPosition) {
	r.mu.Lock()
	wait := r.Gate != nil && !r.gated
	r.gated = true
	if r.inside[ch] {
		r.concurrent[ch] = true
	}
	r.inside[ch] = true
	r.mu.Unlock()
	if wait {
		<-r.Gate
	}
	r.mu.Lock()
	r.events[ch] = append(r.events[ch], Event{Kind: "pub", Pub: pub, Pos: pos})
	r.mu.Unlock()
	runtime.Gosched() // widen the window in which an overlapping call is seen
	r.mu.Lock()
	r.inside[ch] = false
	r.mu.Unlock()
}

// HandleJoin implements broker.EventHandler.
func (r *Recorder) HandleJoin(_ context.Context, ch string, info *protocol.ClientInfo) {
	r.add(ch, Event{Kind: "join", Info: info})
}

// DeliveryScope implements broker.EventHandler: nothing to flush.
func (r *Recorder) DeliveryScope(ctx context.Context) (context.Context, func()) {
	return ctx, func() {}
}

// HandleLeave implements broker.EventHandler.
func (r *Recorder) HandleLeave(_ context.Context, ch string, info *protocol.ClientInfo) {
	r.add(ch, Event{Kind: "leave", Info: info})
}

func (r *Recorder) add(ch string, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[ch] = append(r.events[ch], e)
}

// Events returns a copy of the events of ch so far.
func (r *Recorder) Events(ch string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events[ch]...)
}

// Count returns how many events ch got so far.
func (r *Recorder) Count(ch string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events[ch])
}

// Concurrent reports whether HandlePublication ran twice at once for ch.
func (r *Recorder) Concurrent(ch string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.concurrent[ch]
}

// Wait waits until ch got at least n events and returns them.
func (r *Recorder) Wait(t testing.TB, ch string, n int) []Event {
	t.Helper()
	WaitFor(t, fmt.Sprintf("%d events on %q", n, ch), func() bool { return r.Count(ch) >= n })
	return r.Events(ch)
}

// WaitFor polls cond until it holds, failing t if it does not within
// waitTimeout. what names the condition in the failure.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(pollInterval)
	}
}
