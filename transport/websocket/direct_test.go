package websocket

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); peer.Close() })
	return server, peer
}

// readLines reads n newline-joined lines of text frames from peer.
func readLines(t *testing.T, peer net.Conn, n int) []string {
	t.Helper()
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := struct {
		io.Reader
		io.Writer
	}{bufio.NewReader(peer), peer}
	var got []string
	for len(got) < n {
		p, op, err := wsutil.ReadServerData(br)
		if err != nil {
			t.Fatalf("after %d lines: %v", len(got), err)
		}
		if op != ws.OpText {
			t.Fatalf("opcode %v", op)
		}
		got = append(got, strings.Split(string(p), "\n")...)
	}
	return got
}

// sendDirect pushes msg as a broadcast to few subscribers does: through a
// Batch flushed at once, which writes a quiet connection directly.
func sendDirect(c *conn, msg []byte) bool {
	b := outbox.GetBatch()
	defer outbox.PutBatch(b)
	ok := b.Push(c.out, msg)
	b.Flush()
	return ok
}

func newTestConn(nc net.Conn, window time.Duration) *conn {
	return newConn(nc, hub.FormatProtocol, limits{writeTimeout: 10 * time.Second},
		outbox.Options{MaxMessages: 4096, MaxBytes: 64 << 20, FlushWindow: window, Clock: outbox.NewClock()})
}

// TestDirectWritesTheSocketDoesNotTake sends far more than a socket buffer
// holds, directly, to a peer that reads only later: the first direct write
// leaves its rest to the writer, and the peer then reads every message in
// order, in intact frames.
func TestDirectWritesTheSocketDoesNotTake(t *testing.T) {
	server, peer := tcpPair(t)
	c := newTestConn(server, 4*time.Millisecond)
	if c.raw == nil {
		t.Fatal("a TCP connection must allow direct writes")
	}
	const n = 200
	pad := strings.Repeat("x", 16<<10)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad)
		if !sendDirect(c, []byte(want[i])) {
			t.Fatalf("message %d refused", i)
		}
	}
	got := readLines(t, peer, n)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d: %.40q, want %.40q", i, got[i], want[i])
		}
	}
	c.out.Close(protocol.DisconnectShutdown)
	waitDone(t, c)
}

// TestDirectWriteThenWindow checks that a direct write and the writer's
// write after it (within the flush window) reach the peer as two frames,
// in order.
func TestDirectWriteThenWindow(t *testing.T) {
	server, peer := tcpPair(t)
	c := newTestConn(server, 20*time.Millisecond)
	sendDirect(c, []byte(`"a"`))
	sendDirect(c, []byte(`"b"`))
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := struct {
		io.Reader
		io.Writer
	}{bufio.NewReader(peer), peer}
	for _, want := range []string{`"a"`, `"b"`} {
		p, _, err := wsutil.ReadServerData(br)
		if err != nil {
			t.Fatal(err)
		}
		if string(p) != want {
			t.Fatalf("frame %q, want %q", p, want)
		}
	}
	c.out.Close(protocol.DisconnectShutdown)
	waitDone(t, c)
}

// TestDirectWriteToAClosedPeer writes directly to a socket whose peer is
// gone: the write fails, and the connection ends without a close
// handshake.
func TestDirectWriteToAClosedPeer(t *testing.T) {
	server, peer := tcpPair(t)
	c := newTestConn(server, 0)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // a reset
	// Wait for the reset to arrive: a read sees it.
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a reset peer succeeded")
	}
	sendDirect(c, []byte(`"x"`))
	waitDone(t, c)
	if c.out.Err() == nil {
		t.Fatal("a write to a reset peer did not end the outbox with an error")
	}
}

// waitDone waits until no writer will write to c again.
func waitDone(t *testing.T, c *conn) {
	t.Helper()
	select {
	case <-c.out.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection's writer did not finish")
	}
}
