package websocket

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/redcast/redcast"
)

// An idle connection's read loop parks (Linux) or waits on a fresh
// goroutine (elsewhere, and over TLS): these tests hold on every system
// to what must not change, that a silent peer is disconnected, that a
// closing connection is released, and that shutdown leaves nothing behind.
// park_linux_test.go checks that parked connections hold no goroutine.

// waitTimeout bounds every wait for a condition.
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutinesIn counts the goroutines with a frame of a function whose name
// begins with prefix.
func goroutinesIn(prefix string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for line := range strings.SplitSeq(g, "\n") {
			if strings.HasPrefix(line, prefix) { // frames; "created by" lines do not match
				count++
				break
			}
		}
	}
	return count
}

// serving counts the goroutines that run a Handler's code: the read loops,
// and connections being upgraded or set up.
func serving() int {
	return goroutinesIn("github.com/redcast/redcast/transport/websocket.(*Handler).")
}

// connect sends connect and reads the reply.
func (c *rawConn) connect(id int) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"id":%d,"method":"connect"}`, id))
	if got := c.lines(1)[0]; !strings.HasPrefix(got, fmt.Sprintf(`{"id":%d,"result"`, id)) {
		c.t.Fatalf("connect reply %q", got)
	}
}

// ping sends the ping command and reads the reply.
func (c *rawConn) ping(id int) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"id":%d,"method":"ping"}`, id))
	if got, want := c.lines(1)[0], fmt.Sprintf(`{"id":%d,"result":{}}`, id); got != want {
		c.t.Fatalf("ping reply %q, want %q", got, want)
	}
}

// closeFrame reads until the close frame, for waitTimeout at most, and
// returns its code and the last data frame before it (the disconnect push
// of the full protocol). It answers no pings.
func (c *rawConn) closeFrame() (ws.StatusCode, string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var push string
	for {
		f, err := ws.ReadFrame(c.br)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch {
		case f.Header.OpCode == ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code, push
		case f.Header.OpCode.IsData():
			push = string(f.Payload)
		}
	}
}

// TestSilentPeerDisconnected: a connected client that stops sending, and
// answers no pings, is disconnected with 3003 once PingInterval plus
// PongTimeout passed since its last frame. The pong timeout is shorter
// than the ping interval, so that the deadline falls between two pings: a
// parked connection must be woken at the deadline, not at the next ping.
func TestSilentPeerDisconnected(t *testing.T) {
	const interval, timeout = 2 * time.Second, 200 * time.Millisecond
	base, _ := startNode(t, redcast.Config{PingInterval: interval, PongTimeout: timeout})
	c := dial(t, base+"/connection/websocket")
	c.connect(1)
	start := time.Now()
	code, push := c.closeFrame()
	took := time.Since(start)
	if code != 3003 || !strings.Contains(push, `"code":3003`) {
		t.Fatalf("close code %d after push %q, want 3003", code, push)
	}
	// The connect frame came a little before start; the next ping would
	// come at 2*interval: the slack is wide for a busy machine, and still
	// tells the deadline from that ping.
	if took < interval || took > interval+timeout+1200*time.Millisecond {
		t.Fatalf("disconnected after %v, want about %v", took, interval+timeout)
	}
}

// TestServerCloseWithSilentPeer: the server closes an idle connection (it
// never sent connect) whose peer neither answers the close frame nor
// closes its socket; the client is still released, after closeLinger.
func TestServerCloseWithSilentPeer(t *testing.T) {
	base, node := startNode(t, redcast.Config{ConnectTimeout: 300 * time.Millisecond})
	c := dial(t, base+"/connection/websocket")
	waitFor(t, "the client to register", func() bool { return node.NumClients() == 1 })
	if code, _ := c.closeFrame(); code != 3502 {
		t.Fatalf("close code %d, want 3502 (no connect)", code)
	}
	closed := time.Now()
	waitFor(t, "the client to be released", func() bool { return node.NumClients() == 0 })
	if took := time.Since(closed); took > closeLinger+time.Second {
		t.Fatalf("released %v after the close frame, want at most about %v", took, closeLinger)
	}
}

// TestShutdownWithIdleConnections: shutting down the node and closing the
// Handler while connections are idle (parked, on Linux) disconnects them
// all and leaves no goroutine behind.
func TestShutdownWithIdleConnections(t *testing.T) {
	ts := startServer(t, redcast.Config{}, false)
	before := goleak.IgnoreCurrent()
	conns := make([]*rawConn, 5)
	for i := range conns {
		conns[i] = dial(t, ts.base+"/connection/websocket")
		conns[i].connect(1)
	}
	if runtime.GOOS == "linux" {
		waitFor(t, "idle connections to park", func() bool { return serving() == 0 })
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.node.Shutdown(ctx) }()
	for _, c := range conns {
		if code, _ := c.closeFrame(); code != 3001 {
			t.Errorf("close code %d, want 3001", code)
		}
		c.nc.Close()
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := ts.h.Close(); err != nil {
		t.Fatalf("close handler: %v", err)
	}
	goleak.VerifyNone(t, before)
}

// TestPeerCloseWhileIdle: the peer of an idle connection closes it; the
// server answers with a close frame and releases the client.
func TestPeerCloseWhileIdle(t *testing.T) {
	base, node := startNode(t, redcast.Config{})
	c := dial(t, base+"/connection/websocket")
	c.connect(1)
	if runtime.GOOS == "linux" {
		waitFor(t, "the idle connection to park", func() bool { return serving() == 0 })
	}
	body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
	if _, err := c.nc.Write(clientFrame(ws.OpClose, true, body)); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.closeFrame(); code != ws.StatusNormalClosure {
		t.Fatalf("close code %d, want %d", code, ws.StatusNormalClosure)
	}
	c.nc.Close()
	waitFor(t, "the client to be released", func() bool { return node.NumClients() == 0 })
}
