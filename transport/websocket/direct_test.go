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

// TestDirectWritesTheSocketDoesNotTake sends far more than a socket buffer
// holds, directly, to a peer that reads only later: the first direct write
// leaves its rest to the writer, and the peer then reads every message in
// order, in intact frames.
func TestDirectWritesTheSocketDoesNotTake(t *testing.T) {
	server, peer := tcpPair(t)
	c := newConn(server, hub.FormatProtocol, limits{maxMessages: 4096, maxBytes: 64 << 20, writeTimeout: 10 * time.Second, flushWindow: DefaultFlushWindow})
	if c.raw == nil {
		t.Fatal("a TCP connection must allow direct writes")
	}
	const n = 200
	pad := strings.Repeat("x", 16<<10)
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, pad)
		if !c.SendDirect([]byte(want[i])) {
			t.Fatalf("message %d refused", i)
		}
	}
	c.mu.Lock()
	partial, writing := len(c.partial), c.writing
	c.mu.Unlock()
	if partial == 0 && !writing {
		t.Fatal("3 MiB went out without the writer: the test did not fill the socket")
	}
	got := readLines(t, peer, n)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d: %.40q, want %.40q", i, got[i], want[i])
		}
	}
	c.Close(protocol.DisconnectShutdown)
	waitDone(t, c)
}

// TestDirectWriteWaitsForTheWindow checks that a direct send right after
// a write does not write again at once but leaves the message to the
// writer, which writes it when the window is over.
func TestDirectWriteWaitsForTheWindow(t *testing.T) {
	server, peer := tcpPair(t)
	c := newConn(server, hub.FormatProtocol, limits{maxMessages: 64, maxBytes: 1 << 20, writeTimeout: 10 * time.Second, flushWindow: 20 * time.Millisecond})
	c.SendDirect([]byte(`"a"`))
	c.mu.Lock()
	direct := !c.writing && len(c.queue) == 0 && !c.lastWrite.IsZero()
	c.mu.Unlock()
	if !direct {
		t.Fatal("the first message of a quiet connection was not written directly")
	}
	c.SendDirect([]byte(`"b"`))
	c.mu.Lock()
	writer := c.writing // it waits out the window, then lingers 250 ms
	c.mu.Unlock()
	if !writer {
		t.Fatal("a message within the flush window was written directly")
	}
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
	c.Close(protocol.DisconnectShutdown)
	waitDone(t, c)
}

// TestDirectWriteToAClosedPeer writes directly to a socket whose peer is
// gone: the write fails, and the connection closes at once, in the call,
// without a writer.
func TestDirectWriteToAClosedPeer(t *testing.T) {
	server, peer := tcpPair(t)
	c := newConn(server, hub.FormatProtocol, limits{maxMessages: 64, maxBytes: 1 << 20, writeTimeout: 10 * time.Second})
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // a reset
	// Wait for the reset to arrive: a read sees it.
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a reset peer succeeded")
	}
	c.SendDirect([]byte(`"x"`))
	c.mu.Lock()
	closing, writing := c.closing, c.writing
	c.mu.Unlock()
	if !closing || writing {
		t.Fatalf("after a direct write to a reset peer: closing %v, writer %v; want closing, no writer", closing, writing)
	}
	waitDone(t, c)
}

// waitDone waits until no writer will write to c again.
func waitDone(t *testing.T, c *conn) {
	t.Helper()
	select {
	case <-c.done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection's writer did not finish")
	}
}
