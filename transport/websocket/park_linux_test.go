//go:build linux

package websocket

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
)

// pollers counts the Handlers' poll goroutines.
func pollers() int {
	return goroutinesIn("github.com/redcast/redcast/transport/websocket.(*poller).run(")
}

// TestIdleConnectionsHoldNoGoroutine: idle connections, of the full
// protocol and plain mode, park their sockets and hold no goroutine; a
// parked connection still gets its peer's commands and messages, and
// parks again after.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 40
	ts := startServer(t, redcast.Config{}, false)
	base := runtime.NumGoroutine()
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = dial(t, ts.base+"/connection/websocket")
		conns[i].connect(1)
	}
	a := dial(t, ts.base+"/rooms/idle?name=a")
	b := dial(t, ts.base+"/rooms/idle?name=b")
	// The poll goroutine, and some slack for the node's own (writers
	// linger a little after they wrote): far fewer than n.
	parked := func() bool { return serving() == 0 && runtime.NumGoroutine() <= base+5 }
	waitFor(t, "idle connections to hold no goroutine", parked)
	if got := pollers(); got != 1 {
		t.Fatalf("%d poll goroutines, want 1", got)
	}
	for _, c := range conns {
		c.ping(2)
	}
	a.send("hello")
	if got, _ := b.read(); got != "hello" {
		t.Fatalf("b got %q", got)
	}
	waitFor(t, "the connections to park again", parked)
}

// TestPongsKeepConnectionParked: a peer that answers pings and sends
// nothing else stays connected past PingInterval+PongTimeout, and its
// connection parks again after each pong.
func TestPongsKeepConnectionParked(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	ts := startServer(t, redcast.Config{PingInterval: interval, PongTimeout: timeout}, false)
	c := dial(t, ts.base+"/connection/websocket")
	c.connect(1)
	for pongs := 0; pongs < 5; pongs++ {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := ws.ReadFrame(c.br)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Header.OpCode != ws.OpPing {
			t.Fatalf("got opcode %v (%q), want a ping", f.Header.OpCode, f.Payload)
		}
		// A ping interval after the last pong: the reader read it and
		// parked again.
		waitFor(t, "the connection to park", func() bool { return serving() == 0 })
		if _, err := c.nc.Write(clientFrame(ws.OpPong, true, f.Payload)); err != nil {
			t.Fatal(err)
		}
	}
	c.ping(2)
}

// TestHandlerCloseResumesParked: Close stops the poll goroutine and gives
// every parked connection a read loop of its own again; they keep working,
// on a goroutine each.
func TestHandlerCloseResumesParked(t *testing.T) {
	ts := startServer(t, redcast.Config{}, false)
	conns := make([]*rawConn, 3)
	for i := range conns {
		conns[i] = dial(t, ts.base+"/connection/websocket")
		conns[i].connect(1)
	}
	waitFor(t, "idle connections to park", func() bool { return serving() == 0 })
	if err := ts.h.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poll goroutine to end", func() bool { return pollers() == 0 })
	waitFor(t, "a read loop per connection", func() bool { return serving() == len(conns) })
	for _, c := range conns {
		c.ping(2)
		c.ping(3)
	}
	if got := serving(); got != len(conns) {
		t.Fatalf("%d goroutines serve %d connections after Close, want one each", got, len(conns))
	}
}

// TestTLSConnectionWaitsOnGoroutine: a TLS connection cannot be parked
// (the TLS layer may hold data the socket does not show); it waits for
// its peer on a goroutine as before.
func TestTLSConnectionWaitsOnGoroutine(t *testing.T) {
	ts := startServer(t, redcast.Config{}, true)
	d := ws.Dialer{TLSConfig: ts.srv.Client().Transport.(*http.Transport).TLSClientConfig}
	c := dialWith(t, d, ts.base+"/connection/websocket")
	c.connect(1)
	c.ping(2) // the read loop went idle after connect before it read this
	if got := pollers(); got != 0 {
		t.Fatalf("%d poll goroutines, want none", got)
	}
	if got := serving(); got != 1 {
		t.Fatalf("%d goroutines serve the connection, want 1", got)
	}
	c.ping(3)
}

// TestBusyConnectionLingers: a client that sends again soon after each
// park keeps its read loop waiting on a goroutine for readLinger before
// it parks, instead of parking after every frame; once it is quiet for
// that long it parks.
func TestBusyConnectionLingers(t *testing.T) {
	ts := startServer(t, redcast.Config{}, false)
	c := dial(t, ts.base+"/connection/websocket")
	c.connect(1)
	lingering := func() bool {
		return goroutinesIn("github.com/redcast/redcast/transport/websocket.(*conn).linger(") == 1
	}
	for id := 2; id < 8; id++ {
		c.ping(id)
	}
	waitFor(t, "the read loop of a busy connection to linger", lingering)
	waitFor(t, "the connection to park after the linger", func() bool { return serving() == 0 })
}
