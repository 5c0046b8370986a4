package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if binaryDir != "" {
			_ = os.RemoveAll(binaryDir)
		}
	}))
}

// waitTimeout bounds every wait for a condition.
const waitTimeout = 15 * time.Second

// startServer starts a server with cfg on a random local port and returns
// the base URL of its WebSocket endpoints ("ws://127.0.0.1:PORT") and the
// server. It is shut down when the test ends.
func startServer(t *testing.T, cfg redcast.Config) (string, *server.Server) {
	t.Helper()
	addr, srv := testserver.Start(t, server.Config{Node: cfg})
	return "ws://" + addr, srv
}

// protocolURL is the full-protocol endpoint of the server at base.
func protocolURL(base string) string { return base + "/connection/websocket" }

// testContext returns a context that ends with the test or after waitTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// busyContext is testContext for the tests that make hundreds of round
// trips under it (a publisher that keeps publishing while others
// subscribe): they take 6-13s on a busy machine and more than
// waitTimeout in all when it is busier, where no single call is
// slow. A call that hangs still fails them.
func busyContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 4*waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// conn is a client.Client with the pushes it received.
type conn struct {
	*client.Client
	*recorder
}

// dial connects a client named name (empty: anonymous) to the server at base,
// recording its pushes. It is closed when the test ends.
func dial(t *testing.T, base, name string) *conn {
	t.Helper()
	rec := &recorder{}
	c, err := client.Dial(testContext(t), protocolURL(base), client.Options{Name: name, OnPush: rec.add})
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{Client: c, recorder: rec}
}

// recorder keeps the pushes a client received, in order.
type recorder struct {
	mu     sync.Mutex
	pushes []*protocol.Push
}

func (r *recorder) add(p *protocol.Push) {
	r.mu.Lock()
	r.pushes = append(r.pushes, p)
	r.mu.Unlock()
}

// all returns the pushes received so far.
func (r *recorder) all() []*protocol.Push {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pushes)
}

// pubs returns the publications received so far on ch.
func (r *recorder) pubs(ch string) []protocol.Publication {
	var out []protocol.Publication
	for _, p := range r.all() {
		if p.Type == protocol.PushPublication && p.Channel == ch {
			out = append(out, *p.Pub)
		}
	}
	return out
}

// ofType returns the pushes of type typ (and channel ch, unless empty)
// received so far.
func (r *recorder) ofType(typ, ch string) []*protocol.Push {
	var out []*protocol.Push
	for _, p := range r.all() {
		if p.Type == typ && (ch == "" || p.Channel == ch) {
			out = append(out, p)
		}
	}
	return out
}

// waitPubs waits until at least n publications of ch were received and
// returns them.
func (r *recorder) waitPubs(t *testing.T, ch string, n int) []protocol.Publication {
	t.Helper()
	var got []protocol.Publication
	waitFor(t, fmt.Sprintf("%d publications on %s", n, ch), func() bool {
		got = r.pubs(ch)
		return len(got) >= n
	})
	return got
}

// waitPush waits for a push of type typ on ch about client id (join, leave)
// and returns it.
func (r *recorder) waitPush(t *testing.T, typ, ch, id string) *protocol.Push {
	t.Helper()
	var found *protocol.Push
	waitFor(t, fmt.Sprintf("%s push on %s for %s", typ, ch, id), func() bool {
		for _, p := range r.ofType(typ, ch) {
			if p.Client != nil && p.Client.Client == id {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// waitFor polls cond until it holds; the test fails if it does not within
// waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Within(t, waitTimeout, what, cond)
}

// checkOffsets fails unless pubs have the consecutive offsets from, from+1 …
func checkOffsets(t *testing.T, what string, pubs []protocol.Publication, from uint64) {
	t.Helper()
	for i, p := range pubs {
		if want := from + uint64(i); p.Offset != want {
			t.Fatalf("%s: publication %d has offset %d, want %d (offsets %v)", what, i, p.Offset, want, offsets(pubs))
		}
	}
}

func offsets(pubs []protocol.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

// wantError fails unless err is the protocol error with want's code.
func wantError(t *testing.T, what string, err error, want *protocol.Error) {
	t.Helper()
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Code != want.Code {
		t.Errorf("%s: error %v, want error %d (%s)", what, err, want.Code, want.Message)
	}
}

// wantDisconnect fails unless err carries a protocol.Disconnect with code.
func wantDisconnect(t *testing.T, what string, err error, code uint16) {
	t.Helper()
	var d protocol.Disconnect
	if !errors.As(err, &d) || d.Code != code {
		t.Errorf("%s: error %v, want disconnect %d", what, err, code)
	}
}

// publishN publishes n messages {"n": i} (i from 1) to ch, one after the
// other, and returns their positions.
func publishN(t *testing.T, c *conn, ch string, n int) []protocol.StreamPosition {
	t.Helper()
	ctx := testContext(t)
	out := make([]protocol.StreamPosition, n)
	for i := range n {
		pos, err := c.Publish(ctx, ch, map[string]int{"n": i + 1})
		if err != nil {
			t.Fatalf("publish %d to %s: %v", i+1, ch, err)
		}
		out[i] = pos
	}
	return out
}

// namespaces returns the default namespaces plus extra ones, which are
// open to anonymous clients (subscribe and publish, with publisher info)
// and have join/leave when they have presence.
func namespaces(extra map[string]auth.Namespace) map[string]auth.Namespace {
	ns := auth.DefaultNamespaces()
	for k, v := range extra {
		v.Anonymous, v.Publish, v.AttachInfo = true, true, true
		v.JoinLeave = v.Presence
		ns[k] = v
	}
	return ns
}
