package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// TestNodeSIGTERM stops a node process with SIGTERM while a publisher on
// another node publishes into the channels its sessions subscribe to. Every
// session is told to reconnect (3001) after a spread delay, the node stops in
// order (exit status 0, within its shutdown timeout, not ready while it
// drains), and once a new node serves on its address every session has
// recovered every acknowledged publication exactly once, in order.
func TestNodeSIGTERM(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	const shutdownTimeout = 5 * time.Second
	args := []string{"--redis", rs.URL(), "--redis-prefix", "sigterm",
		"--history-size", "10000", "--shutdown-timeout", shutdownTimeout.String()}
	a, b := startNodeProcess(t, args...), startNodeProcess(t, args...)
	ctx := testContext(t)
	channels := []string{"chat:sigterm-0", "chat:sigterm-1", "chat:sigterm-2"}

	// Twenty sessions on A, each on two of the three channels.
	subs := make([]*sessionRecorder, 20)
	for i := range subs {
		subs[i] = connectSession(t, a.base, channels[i%3], channels[(i+1)%3])
	}

	pub := startPublisher(t, dial(t, b.base, "pub"), channels)
	for _, s := range subs {
		for _, ch := range s.channels {
			s.waitCount(t, ch, 20)
		}
	}

	stopped := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A stops being ready (/readyz answers 503, or its listener is
	// closed) and is never ready again until it exits.
	notReady := func() bool {
		status, err := readyz(ctx, a.addr)
		switch {
		case err == nil && status == http.StatusOK:
			return false
		case err == nil && status != http.StatusServiceUnavailable:
			t.Fatalf("/readyz of the stopping node answered %d, want 503", status)
		case err != nil && !listenerClosed(err):
			t.Fatalf("/readyz of the stopping node: %v, want 503 or the connection refused", err)
		}
		return true
	}
	waitFor(t, "the stopping node is not ready", notReady)
	for exited := false; !exited; {
		select {
		case <-a.done:
			exited = true
		case <-time.After(time.Millisecond):
			if !notReady() {
				t.Fatal("/readyz of the stopping node went back to 200")
			}
		}
	}
	if took := time.Since(stopped); a.exitErr != nil || took > shutdownTimeout {
		t.Fatalf("node exited after %v with %v, want status 0 within %v; log:\n%s", took, a.exitErr, shutdownTimeout, strings.Join(a.logLines(), "\n"))
	}
	log := strings.Join(a.logLines(), "\n")
	if !strings.Contains(log, `msg="shutting down"`) || !strings.Contains(log, "msg=stopped") {
		t.Errorf("the node did not log an orderly stop:\n%s", log)
	}
	for i, s := range subs {
		e := s.firstDisconnect(t)
		wantDisconnect(t, fmt.Sprintf("session %d", i), e.Err, protocol.DisconnectShutdown.Code)
		if !e.Reconnect || e.Delay <= 0 || e.Delay > 3*time.Second+time.Millisecond {
			t.Errorf("session %d: disconnect event %+v, want a reconnect after a delay of at most 3s", i, e)
		}
	}
	if err := pub.err(); err != nil {
		t.Fatalf("the publisher on the other node failed: %v", err)
	}

	// A new node on A's address: the sessions come back to it and recover.
	startNodeProcess(t, append(args, "--addr", a.addr)...)
	for i, s := range subs {
		waitFor(t, fmt.Sprintf("session %d resubscribed", i), func() bool { return s.resubscribed() })
	}
	after := pub.acked()
	for _, ch := range channels {
		pub.waitAcked(t, ch, len(after[ch])+20)
	}
	acked := pub.stop(t)
	for i, s := range subs {
		for _, ch := range s.channels {
			want := acked[ch]
			got := s.waitCount(t, ch, len(want))
			if !slices.Equal(offsets(got), want) {
				t.Errorf("session %d, %s: offsets %v, want the %d acknowledged ones %v", i, ch, offsets(got), len(want), want)
			}
		}
		s.checkRecovered(t, i)
	}
}

// readyz returns the status of GET /readyz on addr.
func readyz(ctx context.Context, addr string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return 0, err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// listenerClosed reports whether err is what a client sees when the server
// closed its listener: connection refused, or, for a connection still in
// the listen backlog, reset or closed before the response.
func listenerClosed(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// sessionRecorder is a client.Session with what its handlers and
// OnDisconnect received.
type sessionRecorder struct {
	*client.Session
	channels []string

	mu          sync.Mutex
	pubs        map[string][]protocol.Publication
	subscribed  map[string][]client.SubscribedEvent
	disconnects []client.DisconnectEvent
}

// connectSession opens a session to the node at base that reconnects fast
// (backoff from 50ms) and subscribes it to channels. It is closed when the
// test ends.
func connectSession(t *testing.T, base string, channels ...string) *sessionRecorder {
	t.Helper()
	ctx := testContext(t)
	r := &sessionRecorder{
		channels:   channels,
		pubs:       map[string][]protocol.Publication{},
		subscribed: map[string][]client.SubscribedEvent{},
	}
	s, err := client.Connect(ctx, protocolURL(base), client.SessionOptions{
		BaseDelay: 50 * time.Millisecond,
		MaxDelay:  200 * time.Millisecond,
		OnDisconnect: func(e client.DisconnectEvent) {
			r.mu.Lock()
			r.disconnects = append(r.disconnects, e)
			r.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r.Session = s
	h := client.Handlers{
		OnSubscribed: func(e client.SubscribedEvent) {
			r.mu.Lock()
			r.subscribed[e.Channel] = append(r.subscribed[e.Channel], e)
			r.mu.Unlock()
		},
		OnPublication: func(e client.PublicationEvent) {
			r.mu.Lock()
			r.pubs[e.Channel] = append(r.pubs[e.Channel], e.Publication)
			r.mu.Unlock()
		},
	}
	for _, ch := range channels {
		if _, err := s.Subscribe(ctx, ch, client.SubscribeOptions{}, h); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// waitCount waits until at least n publications of ch were handled and
// returns them.
func (r *sessionRecorder) waitCount(t *testing.T, ch string, n int) []protocol.Publication {
	t.Helper()
	var got []protocol.Publication
	waitFor(t, fmt.Sprintf("%d publications on %s", n, ch), func() bool {
		r.mu.Lock()
		got = slices.Clone(r.pubs[ch])
		r.mu.Unlock()
		return len(got) >= n
	})
	return got
}

// firstDisconnect waits for the first disconnect event and returns it.
func (r *sessionRecorder) firstDisconnect(t *testing.T) client.DisconnectEvent {
	t.Helper()
	var e client.DisconnectEvent
	waitFor(t, "a disconnect", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.disconnects) == 0 {
			return false
		}
		e = r.disconnects[0]
		return true
	})
	return e
}

// resubscribed reports whether every channel was subscribed again.
func (r *sessionRecorder) resubscribed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.channels {
		if len(r.subscribed[ch]) < 2 {
			return false
		}
	}
	return true
}

// checkRecovered fails unless every subscription after the first of each
// channel recovered.
func (r *sessionRecorder) checkRecovered(t *testing.T, i int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.channels {
		for _, e := range r.subscribed[ch][1:] {
			if !e.Recovering || !e.Recovered {
				t.Errorf("session %d, %s: resubscribed with %+v, want recovered", i, ch, e)
			}
		}
	}
}

// publisher publishes {"n": i} round-robin into its channels, every
// 2ms or so, until stopped, and keeps the offsets acknowledged.
type publisher struct {
	quit chan struct{}
	done chan struct{}

	mu     sync.Mutex
	offs   map[string][]uint64
	failed error
}

func startPublisher(t *testing.T, c *conn, channels []string) *publisher {
	p := &publisher{quit: make(chan struct{}), done: make(chan struct{}), offs: map[string][]uint64{}}
	ctx := testContext(t)
	go func() {
		defer close(p.done)
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-pace.C:
			case <-p.quit:
				return
			}
			ch := channels[i%len(channels)]
			pos, err := c.Publish(ctx, ch, map[string]int{"n": i})
			p.mu.Lock()
			if err != nil {
				p.failed = fmt.Errorf("publish %d to %s: %w", i, ch, err)
				p.mu.Unlock()
				return
			}
			p.offs[ch] = append(p.offs[ch], pos.Offset)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// err returns the error that stopped the publisher, if any.
func (p *publisher) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// acked returns the offsets acknowledged so far, by channel.
func (p *publisher) acked() map[string][]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]uint64, len(p.offs))
	for ch, o := range p.offs {
		out[ch] = slices.Clone(o)
	}
	return out
}

// waitAcked waits until n publications to ch were acknowledged.
func (p *publisher) waitAcked(t *testing.T, ch string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d publications acknowledged on %s", n, ch), func() bool {
		if p.err() != nil {
			return true
		}
		return len(p.acked()[ch]) >= n
	})
}

// stop stops the publisher and returns the acknowledged offsets; it fails
// the test if a publish failed. It is idempotent.
func (p *publisher) stop(t *testing.T) map[string][]uint64 {
	t.Helper()
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	if err := p.err(); err != nil {
		t.Fatal(err)
	}
	return p.acked()
}
