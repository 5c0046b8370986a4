// Package webhooktest is a real HTTP receiver of webhooks for tests: it
// records every request (headers and raw body) and the events of those it
// accepted, and can be made to fail or to hang.
package webhooktest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Request is one POST the receiver accepted.
type Request struct {
	Header http.Header
	Body   []byte
	Events []Event
}

// Event is one event of a batch, decoded.
type Event map[string]any

// Name returns the event's name.
func (e Event) Name() string { s, _ := e["name"].(string); return s }

// Channel returns the event's channel.
func (e Event) Channel() string { s, _ := e["channel"].(string); return s }

// Receiver is a webhook receiver on a random loopback port, closed when
// the test ends. Its methods are safe for concurrent use.
type Receiver struct {
	t    testing.TB
	addr string
	// check, when set, tells whether a request is signed right.
	check   func(http.Header, []byte) bool
	serving sync.WaitGroup

	mu       sync.Mutex
	srv      *http.Server  // nil while down
	status   int           // when not 0, every request is answered with it
	block    chan struct{} // requests wait for it to close, when set
	requests []Request
	events   []Event
	unsigned int
}

// Start starts a receiver; check, when not nil, verifies each request's
// signature (Unsigned counts those it refused).
func Start(t testing.TB, check func(http.Header, []byte) bool) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{t: t, addr: ln.Addr().String(), check: check}
	r.serve(ln)
	t.Cleanup(func() {
		r.Unblock()
		r.Down()
	})
	return r
}

func (r *Receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: r}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	r.serving.Go(func() { _ = srv.Serve(ln) })
}

// URL is where the receiver listens.
func (r *Receiver) URL() string { return "http://" + r.addr + "/webhook" }

// Down stops the receiver: connections to it are refused until Up.
func (r *Receiver) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	r.serving.Wait()
}

// Up serves again at the same address after Down.
func (r *Receiver) Up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("webhooktest: listen again: %v", err)
	}
	r.serve(ln)
}

// Fail makes the receiver answer every request with status (0: accept
// them again).
func (r *Receiver) Fail(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// Block makes requests hang until Unblock (or the test's end).
func (r *Receiver) Block() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.block == nil {
		r.block = make(chan struct{})
	}
}

// Unblock lets hanging requests and those to come through.
func (r *Receiver) Unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.block != nil {
		close(r.block)
		r.block = nil
	}
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	block, status := r.block, r.status
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	var batch struct {
		TimeMS int64   `json:"time_ms"`
		Events []Event `json:"events"`
	}
	if err := json.Unmarshal(body, &batch); err != nil || batch.TimeMS == 0 {
		r.t.Errorf("webhooktest: a body that is not a batch: %q", body)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.check != nil && !r.check(req.Header, body) {
		r.unsigned++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.requests = append(r.requests, Request{Header: req.Header.Clone(), Body: body, Events: batch.Events})
	r.events = append(r.events, batch.Events...)
}

// Requests returns the requests accepted so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Events returns the events accepted so far, in the order received.
func (r *Receiver) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Unsigned counts the requests refused for their signature.
func (r *Receiver) Unsigned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unsigned
}

// Count counts the events named name on channel ch ("" for any).
func (r *Receiver) Count(name, ch string) int {
	n := 0
	for _, e := range r.Events() {
		if e.Name() == name && (ch == "" || e.Channel() == ch) {
			n++
		}
	}
	return n
}

// Of returns the events of channel ch, in order.
func (r *Receiver) Of(ch string) []Event {
	var out []Event
	for _, e := range r.Events() {
		if e.Channel() == ch {
			out = append(out, e)
		}
	}
	return out
}
