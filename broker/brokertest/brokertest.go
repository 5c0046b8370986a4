// Package brokertest is a conformance suite for implementations of
// broker.Broker and broker.PresenceManager, in the spirit of
// testing/slogtest: every implementation runs the same checks from its own
// tests.
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) broker.Broker { return memory.New(memory.Config{}) })
//	}
//
// The checks assume nothing about timing: delivery may be asynchronous, so
// they poll for what they expect with a deadline instead of sleeping.
package brokertest

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

const (
	// waitTimeout bounds how long a check waits for a delivery or an expiry.
	waitTimeout = 5 * time.Second
	// pollInterval is how often a waiting check looks again.
	pollInterval = 5 * time.Millisecond
)

// brokerCheck is one check of a started broker whose deliveries rec records.
type brokerCheck struct {
	name string
	fn   func(t *testing.T, b broker.Broker, rec *recorder)
}

// Run runs the Broker checks as subtests of t. newBroker is called once per
// subtest and must return a fresh broker, not started, that shares no
// channels with any other (a broker backed by a shared store should use a
// key prefix per call). Run starts it with its own EventHandler and closes
// it when the subtest ends; Close must succeed even when called twice.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	t.Helper()
	for _, c := range brokerChecks() {
		t.Run(c.name, func(t *testing.T) {
			b, rec := start(t, newBroker)
			c.fn(t, b, rec)
		})
	}
}

func brokerChecks() []brokerCheck {
	return []brokerCheck{
		{"PublishOffsets", testPublishOffsets},
		{"Delivery", testDelivery},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"NoDeliveryWithoutSubscription", testNoDeliveryWithoutSubscription},
		{"JoinLeave", testJoinLeave},
		{"HistoryEmpty", testHistoryEmpty},
		{"HistoryLatest", testHistoryLatest},
		{"HistorySince", testHistorySince},
		{"HistorySize", testHistorySize},
		{"HistorySizeZero", testHistorySizeZero},
		{"HistoryTTL", testHistoryTTL},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
}

// start returns a started broker made by newBroker, closed when t ends.
func start(t *testing.T, newBroker func(t *testing.T) broker.Broker) (broker.Broker, *recorder) {
	t.Helper()
	b := newBroker(t)
	rec := newRecorder()
	if err := b.Start(t.Context(), rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, rec
}

// waitFor polls cond until it holds, failing t if it does not within
// timeout. what names the condition in the failure.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pollInterval)
	}
}

// event is one call of the EventHandler.
type event struct {
	kind string // "pub", "join" or "leave"
	pub  *protocol.Publication
	pos  protocol.StreamPosition
	info *protocol.ClientInfo
}

// recorder is an EventHandler that records every call per channel, and
// notes channels whose HandlePublication was entered twice at once.
type recorder struct {
	mu         sync.Mutex
	events     map[string][]event
	inside     map[string]bool
	concurrent map[string]bool
}

var _ broker.EventHandler = (*recorder)(nil)

func newRecorder() *recorder {
	return &recorder{events: map[string][]event{}, inside: map[string]bool{}, concurrent: map[string]bool{}}
}

func (r *recorder) HandlePublication(ch string, pub *protocol.Publication, pos protocol.StreamPosition) {
	r.mu.Lock()
	if r.inside[ch] {
		r.concurrent[ch] = true
	}
	r.inside[ch] = true
	r.events[ch] = append(r.events[ch], event{kind: "pub", pub: pub, pos: pos})
	r.mu.Unlock()
	runtime.Gosched() // widen the window in which an overlapping call is seen
	r.mu.Lock()
	r.inside[ch] = false
	r.mu.Unlock()
}

func (r *recorder) HandleJoin(ch string, info *protocol.ClientInfo) {
	r.add(ch, event{kind: "join", info: info})
}

func (r *recorder) HandleLeave(ch string, info *protocol.ClientInfo) {
	r.add(ch, event{kind: "leave", info: info})
}

func (r *recorder) add(ch string, e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[ch] = append(r.events[ch], e)
}

// get returns a copy of the events of ch so far.
func (r *recorder) get(ch string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events[ch]...)
}

// count returns how many events ch got so far.
func (r *recorder) count(ch string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events[ch])
}

// wasConcurrent reports whether HandlePublication ran twice at once for ch.
func (r *recorder) wasConcurrent(ch string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.concurrent[ch]
}

// waitEvents waits until ch got at least n events and returns them.
func (r *recorder) waitEvents(t *testing.T, ch string, n int) []event {
	t.Helper()
	waitFor(t, waitTimeout, fmt.Sprintf("%d events on %q", n, ch), func() bool { return r.count(ch) >= n })
	return r.get(ch)
}

// sameClient reports whether two client infos are equal.
func sameClient(a, b *protocol.ClientInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Client == b.Client && a.User == b.User && bytes.Equal(a.Info, b.Info)
}

func clientInfo(id, name string) *protocol.ClientInfo {
	return &protocol.ClientInfo{Client: id, User: "u-" + id, Info: fmt.Appendf(nil, `{"name":%q}`, name)}
}

// payload returns distinct, compact JSON data for publication n; it holds
// characters that a careless JSON encoder would escape.
func payload(n int) []byte {
	return fmt.Appendf(nil, `{"n":%d,"text":"<b>caf\u00e9 & é</b>"}`, n)
}
