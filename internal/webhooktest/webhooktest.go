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
	t   testing.TB
	srv *http.Server
	ln  net.Listener
	// check, when set, tells whether a request is signed right.
	check func(http.Header, []byte) bool

	mu       sync.Mutex
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
	r := &Receiver{t: t, ln: ln, check: check}
	r.srv = &http.Server{Handler: r}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = r.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		r.Unblock()
		r.srv.Close()
		<-served
	})
	return r
}

// URL is where the receiver listens.
func (r *Receiver) URL() string { return "http://" + r.ln.Addr().String() + "/webhook" }

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
	block := r.block
	r.mu.Unlock()
	if block != nil {
		<-block
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
	r.requests = append(r.requests, Request{Header: req.Header.Clone(), Body: body})
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
