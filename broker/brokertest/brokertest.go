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
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

const (
	// waitTimeout bounds how long a check waits for a delivery or an expiry.
	waitTimeout = 10 * time.Second
	// pollInterval is how often a waiting check looks again.
	pollInterval = 5 * time.Millisecond
)

// brokerCheck is one check of a started broker whose deliveries rec records.
type brokerCheck struct {
	name string
	fn   func(t *testing.T, b broker.Broker, rec *Recorder)
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
		{"IdempotentPublish", testIdempotentPublish},
		{"IdempotentPublishConcurrent", testIdempotentPublishConcurrent},
		{"IdempotencyKeyExpires", testIdempotencyKeyExpires},
		{"IdempotentPublishMany", testIdempotentPublishMany},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
}

// start returns a started broker made by newBroker, closed when t ends.
func start(t *testing.T, newBroker func(t *testing.T) broker.Broker) (broker.Broker, *Recorder) {
	t.Helper()
	b := newBroker(t)
	rec := NewRecorder()
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
