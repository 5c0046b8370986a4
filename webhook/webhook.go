// Package webhook sends events to HTTP receivers: the machine behind
// redcast's own webhooks and the Pusher protocol's. A Sender owns one
// goroutine per Target; Target.Send never blocks its caller: events wait in
// a bounded queue (what overflows is dropped, counted and logged), go out
// in batches ({"time_ms": T, "events": [...]}, one POST per short window or
// MaxBatch events), signed by the target's Signer, one batch at a time and
// in order, each retried with exponential backoff and jitter while the
// receiver fails. Close flushes what is queued, within a deadline.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcast/redcast/metrics"
)

// Config tunes a Sender. Zero values mean the documented defaults.
type Config struct {
	// QueueSize is how many events wait per target; more are dropped.
	// Default 10000.
	QueueSize int
	// MaxBatch is the most events one POST carries. Default 100.
	MaxBatch int
	// Window is how long the first event of a batch waits for others.
	// Default 50ms.
	Window time.Duration
	// Timeout bounds one POST. Default 5s.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between two attempts of a
	// batch, which doubles from MinBackoff (with jitter). Defaults 100ms
	// and 5s.
	MinBackoff, MaxBackoff time.Duration
	// RetryFor is how long a batch is retried before it is dropped
	// (counted and logged). Default 5 minutes, as Pusher does.
	RetryFor time.Duration
	// Client makes the requests. Default: a client of its own.
	Client *http.Client
	// Logger receives drops and failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics (redcast_webhook_*); nil keeps them
	// unexported.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.QueueSize, 10000)
	def(&c.MaxBatch, 100)
	defDur(&c.Window, 50*time.Millisecond)
	defDur(&c.Timeout, 5*time.Second)
	defDur(&c.MinBackoff, 100*time.Millisecond)
	defDur(&c.MaxBackoff, 5*time.Second)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	defDur(&c.RetryFor, 5*time.Minute)
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Signer signs a request's body by setting headers.
type Signer func(h http.Header, body []byte)

// PusherSigner signs as Pusher signs its webhooks: X-Pusher-Key is the
// app's key, X-Pusher-Signature the hex HMAC-SHA256 of the body with the
// app's secret.
func PusherSigner(key, secret string) Signer {
	return func(h http.Header, body []byte) {
		h.Set("X-Pusher-Key", key)
		h.Set("X-Pusher-Signature", Sign(secret, body))
	}
}

// NativeSigner signs redcast's own webhooks: X-Redcast-Signature is the
// hex HMAC-SHA256 of the body with secret.
func NativeSigner(secret string) Signer {
	return func(h http.Header, body []byte) {
		h.Set("X-Redcast-Signature", Sign(secret, body))
	}
}

// Sign returns the hex HMAC-SHA256 of body with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// ErrClosed is returned by Target when the Sender is closed.
var ErrClosed = errors.New("webhook: sender closed")

// Sender is the webhook machine: its targets and their goroutines. Its
// methods are safe for concurrent use.
type Sender struct {
	cfg     Config
	metrics *senderMetrics
	// hard ends every request and backoff: Close cancels it once its
	// deadline passed.
	hard   context.Context
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: flush and exit
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	targets []*Target
}

// New returns a Sender without targets.
func New(cfg Config) *Sender {
	cfg = cfg.withDefaults()
	hard, cancel := context.WithCancel(context.Background())
	return &Sender{cfg: cfg, metrics: newMetrics(cfg.Registerer), hard: hard, cancel: cancel, stop: make(chan struct{})}
}

// Target adds a receiver at url, whose requests sign signs, and starts its
// goroutine. name labels its metrics and logs ("native", "pusher:1").
// After Close it returns ErrClosed.
func (s *Sender) Target(name, url string, sign Signer) (*Target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	t := &Target{
		s: s, name: name, url: url, sign: sign,
		queue:   make(chan queued, s.cfg.QueueSize),
		sent:    s.metrics.sent.WithLabelValues(name),
		failed:  s.metrics.failed.WithLabelValues(name),
		dropped: s.metrics.dropped.WithLabelValues(name),
		latency: s.metrics.latency.WithLabelValues(name),
	}
	s.targets = append(s.targets, t)
	s.wg.Go(t.run)
	return t, nil
}

// Close stops taking events and delivers what is queued until ctx ends;
// then it abandons the rest (counted as dropped) and returns an error
// saying how much. Its goroutines are gone when it returns. Calling it
// again returns nil at once.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	targets := s.targets
	for _, t := range targets {
		t.closed.Store(true)
	}
	s.mu.Unlock()
	close(s.stop)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
		var lost uint64
		for _, t := range targets {
			lost += t.lost.Load()
		}
		err = fmt.Errorf("webhook: close: %d events not delivered: %w", lost, ctx.Err())
	}
	s.cancel()
	// A Send that saw the sender open may have queued after its goroutine
	// flushed: such events are dropped, and counted as such.
	for _, t := range targets {
		if n := len(t.queue); n > 0 {
			t.drop(n, "queued as the sender closed")
		}
	}
	return err
}

// Target is one receiver. Send is safe for concurrent use.
type Target struct {
	s      *Sender
	name   string
	url    string
	sign   Signer
	queue  chan queued
	closed atomic.Bool
	// lost counts the events abandoned at Close.
	lost atomic.Uint64
	// lastDropLog is when a drop was last logged (Unix ns): drops are
	// logged at most once a second.
	lastDropLog atomic.Int64

	sent, failed, dropped prometheus.Counter
	latency               prometheus.Observer
}

// queued is one encoded event.
type queued = json.RawMessage

// Send queues ev (encoded in JSON now) for the receiver. It never blocks:
// when the queue is full, or the Sender closed, or ev does not encode, the
// event is dropped, counted and logged, and Send reports false.
func (t *Target) Send(ev any) bool {
	b, err := json.Marshal(ev)
	if err != nil {
		t.drop(1, "the event does not encode: "+err.Error())
		return false
	}
	if t.closed.Load() {
		t.drop(1, "the sender is closed")
		return false
	}
	select {
	case t.queue <- b:
		return true
	default:
		t.drop(1, "the queue is full")
		return false
	}
}

// drop counts n dropped events and logs why, at most once a second.
func (t *Target) drop(n int, why string) {
	t.dropped.Add(float64(n))
	now := time.Now().UnixNano()
	last := t.lastDropLog.Load()
	if now-last >= int64(time.Second) && t.lastDropLog.CompareAndSwap(last, now) {
		t.s.cfg.Logger.Warn("webhook events dropped", "target", t.name, "events", n, "why", why)
	}
}

// run gathers batches and delivers them, one at a time, until Close; then
// it delivers what is left.
func (t *Target) run() {
	cfg := t.s.cfg
	batch := make([]queued, 0, cfg.MaxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case ev := <-t.queue:
			batch = append(batch, ev)
		case <-t.s.stop:
			t.flush(batch)
			return
		}
		timer.Reset(cfg.Window)
	gather:
		for len(batch) < cfg.MaxBatch {
			select {
			case ev := <-t.queue:
				batch = append(batch, ev)
			case <-timer.C:
				break gather
			case <-t.s.stop:
				break gather
			}
		}
		timer.Stop()
		t.deliver(batch)
		batch = batch[:0]
	}
}

// flush delivers batch and whatever is queued, in batches, until the
// queue is empty or the Sender's hard stop.
func (t *Target) flush(batch []queued) {
	for {
	fill:
		for len(batch) < t.s.cfg.MaxBatch {
			select {
			case ev := <-t.queue:
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		t.deliver(batch)
		batch = batch[:0]
	}
}

// deliver posts one batch until the receiver takes it (2xx), retrying with
// backoff; it gives up after RetryFor, or at the hard stop.
func (t *Target) deliver(events []queued) {
	cfg := t.s.cfg
	body, _ := json.Marshal(struct { // raw JSON only: cannot fail
		TimeMS int64    `json:"time_ms"`
		Events []queued `json:"events"`
	}{time.Now().UnixMilli(), events})
	start := time.Now()
	backoff := cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := t.post(body)
		if err == nil {
			t.sent.Add(float64(len(events)))
			return
		}
		t.failed.Inc()
		if t.s.hard.Err() != nil {
			t.lost.Add(uint64(len(events)))
			t.dropped.Add(float64(len(events)))
			return
		}
		if time.Since(start) >= cfg.RetryFor {
			t.dropped.Add(float64(len(events)))
			cfg.Logger.Error("webhook batch dropped: the receiver kept failing", "target", t.name, "events", len(events), "attempts", attempt, "err", err)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			cfg.Logger.Warn("webhook delivery failed, retrying", "target", t.name, "attempt", attempt, "err", err)
		}
		// Full jitter over the upper half: nodes that failed together
		// do not retry together.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, cfg.MaxBackoff)
		tm := time.NewTimer(wait)
		select {
		case <-tm.C:
		case <-t.s.hard.Done():
			tm.Stop()
		}
	}
}

// maxReply is the most of a reply's body read (and discarded), so that
// the connection can be reused.
const maxReply = 64 << 10

// post makes one attempt.
func (t *Target) post(body []byte) error {
	ctx, cancel := context.WithTimeout(t.s.hard, t.s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "redcast-webhook")
	if t.sign != nil {
		t.sign(req.Header, body)
	}
	start := time.Now()
	resp, err := t.s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReply))
	resp.Body.Close()
	t.latency.Observe(time.Since(start).Seconds())
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s answered %s", t.url, resp.Status)
	}
	return nil
}

// senderMetrics are a Sender's Prometheus metrics, by target.
type senderMetrics struct {
	sent, failed, dropped *prometheus.CounterVec
	latency               *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *senderMetrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Subsystem: "webhook", Name: name, Help: help}, []string{"target"})
		reg.MustRegister(c)
		return c
	}
	m := &senderMetrics{
		sent:    counter("events_sent_total", "Webhook events the receiver acknowledged (2xx)."),
		failed:  counter("failed_attempts_total", "Webhook POSTs that failed (an error or a status other than 2xx); the batch is retried."),
		dropped: counter("events_dropped_total", "Webhook events dropped: the queue was full, the batch failed for longer than the retry time, or shutdown cut it short."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: "webhook", Name: "request_duration_seconds",
			Help:    "How long receivers took to answer a webhook POST.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"target"}),
	}
	reg.MustRegister(m.latency)
	return m
}
