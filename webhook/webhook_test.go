package webhook_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/internal/webhooktest"
	"github.com/redcast/redcast/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startReceiver starts a receiver that checks X-Redcast-Signature with
// secret.
func startReceiver(t *testing.T, secret string) *webhooktest.Receiver {
	return webhooktest.Start(t, func(h http.Header, body []byte) bool {
		return h.Get("X-Redcast-Signature") == webhook.Sign(secret, body)
	})
}

type event struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// checkOrder fails unless got is events 0..n-1 in order.
func checkOrder(t *testing.T, got []webhooktest.Event, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e["n"] != float64(i) {
			t.Fatalf("event %d is %v: out of order", i, e)
		}
	}
}

// Events are batched (at most MaxBatch per POST), signed, and arrive in
// order; Close flushes what is queued.
func TestBatchesSignedInOrder(t *testing.T) {
	r := startReceiver(t, "s3cret")
	reg := prometheus.NewRegistry()
	s := webhook.New(webhook.Config{MaxBatch: 10, Window: 20 * time.Millisecond, Registerer: reg})
	tg, err := s.Target("native", r.URL(), webhook.NativeSigner("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 95 {
		if !tg.Send(event{"e", i}) {
			t.Fatal("Send refused")
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, r.Events(), 95)
	if n := r.Unsigned(); n != 0 {
		t.Errorf("%d requests with a wrong signature", n)
	}
	reqs := r.Requests()
	if len(reqs) < 10 || len(reqs) > 20 {
		t.Errorf("%d batches for 95 events of at most 10", len(reqs))
	}
	for _, req := range reqs {
		if len(req.Events) > 10 {
			t.Errorf("a batch of %d events", len(req.Events))
		}
	}
	if got := metric(t, reg, "redcast_webhook_events_sent_total"); got != 95 {
		t.Errorf("sent metric %v, want 95", got)
	}
	if tg.Send(event{"late", 0}) {
		t.Error("Send after Close accepted")
	}
}

// A receiver that fails for 10 s (answering 503, then refusing
// connections) gets every event afterwards, in order; failures are
// counted.
func TestReceiverDownThenUp(t *testing.T) {
	r := startReceiver(t, "k")
	reg := prometheus.NewRegistry()
	s := webhook.New(webhook.Config{MaxBatch: 7, Window: 5 * time.Millisecond, MaxBackoff: time.Second, Registerer: reg})
	defer s.Close(context.Background())
	tg, _ := s.Target("native", r.URL(), webhook.NativeSigner("k"))
	r.Fail(http.StatusServiceUnavailable)
	down := time.Now()
	n := 0
	for time.Since(down) < 10*time.Second {
		tg.Send(event{"e", n})
		n++
		if n == 50 {
			// Down hard: nothing listens for a while.
			r.Down()
		}
		time.Sleep(20 * time.Millisecond) // the pace of events, not a wait for a condition
	}
	r.Fail(0)
	r.Up()
	wait.For(t, "every event", func() bool { return len(r.Events()) >= n })
	checkOrder(t, r.Events(), n)
	if f := metric(t, reg, "redcast_webhook_failed_attempts_total"); f < 5 {
		t.Errorf("%v failed attempts counted over 10 s down", f)
	}
	t.Logf("%d events sent while the receiver was down for 10 s all arrived, in order", n)
}

// A receiver that never answers blocks nobody: Send returns at once, what
// overflows the queue is dropped and counted, and Close gives up at its
// deadline.
func TestSlowReceiverNeverBlocks(t *testing.T) {
	r := startReceiver(t, "k")
	r.Block()
	reg := prometheus.NewRegistry()
	s := webhook.New(webhook.Config{QueueSize: 100, MaxBatch: 10, Timeout: time.Minute, Registerer: reg})
	tg, _ := s.Target("native", r.URL(), nil)
	start := time.Now()
	accepted := 0
	for i := range 10000 {
		if tg.Send(event{"e", i}) {
			accepted++
		}
	}
	took := time.Since(start)
	if took > time.Second {
		t.Errorf("10000 Sends took %v with the receiver stuck", took)
	}
	// The goroutine holds one batch (10) and the queue 100 more.
	if accepted < 100 || accepted > 120 {
		t.Errorf("%d events accepted with a queue of 100", accepted)
	}
	if d := metric(t, reg, "redcast_webhook_events_dropped_total"); int(d) != 10000-accepted {
		t.Errorf("dropped metric %v, want %d", d, 10000-accepted)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "not delivered") {
		t.Errorf("Close with a stuck receiver: %v", err)
	}
	t.Logf("10000 Sends took %v; %d accepted", took, accepted)
}

// Pusher's signature: X-Pusher-Key and the HMAC of the body with the
// app's secret (the expected digest from openssl dgst -sha256 -hmac).
func TestPusherSigner(t *testing.T) {
	h := http.Header{}
	webhook.PusherSigner("key", "secret")(h, []byte(`{"a":1}`))
	const want = "aa9e2e3575f5d7098b6caccd790888c36d5fdb63342a73bada2d6a51747a8494"
	if h.Get("X-Pusher-Key") != "key" || h.Get("X-Pusher-Signature") != want {
		t.Fatal(h)
	}
	h = http.Header{}
	webhook.NativeSigner("secret")(h, []byte(`{"a":1}`))
	if h.Get("X-Redcast-Signature") != want {
		t.Fatal(h)
	}
}

// metric returns the value of a counter of target "native" in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == "native" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
