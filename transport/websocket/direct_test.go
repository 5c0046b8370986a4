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
	<-c.done()
}

// TestDirectWriteWaitsForTheWindow checks that a direct send right after
// a write does not write again at once but leaves the message to the
// writer, which writes it with what follows in its window.
func TestDirectWriteWaitsForTheWindow(t *testing.T) {
	server, peer := tcpPair(t)
	c := newConn(server, hub.FormatProtocol, limits{maxMessages: 64, maxBytes: 1 << 20, writeTimeout: 10 * time.Second, flushWindow: 50 * time.Millisecond})
	c.SendDirect([]byte(`"a"`))
	c.mu.Lock()
	direct := !c.writing && len(c.queue) == 0
	c.mu.Unlock()
	if !direct {
		t.Fatal("the first message of a quiet connection was not written directly")
	}
	c.SendDirect([]byte(`"b"`))
	c.SendDirect([]byte(`"c"`))
	c.mu.Lock()
	queued := len(c.queue)
	c.mu.Unlock()
	if queued != 2 {
		t.Fatalf("%d messages queued within the window, want 2", queued)
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := struct {
		io.Reader
		io.Writer
	}{bufio.NewReader(peer), peer}
	for _, want := range []string{`"a"`, "\"b\"\n\"c\""} {
		p, _, err := wsutil.ReadServerData(br)
		if err != nil {
			t.Fatal(err)
		}
		if string(p) != want {
			t.Fatalf("frame %q, want %q", p, want)
		}
	}
	c.Close(protocol.DisconnectShutdown)
	<-c.done()
}

// TestDirectWriteToAClosedPeer writes directly to a socket whose peer is
// gone: the connection closes instead of queueing forever.
func TestDirectWriteToAClosedPeer(t *testing.T) {
	server, peer := tcpPair(t)
	c := newConn(server, hub.FormatProtocol, limits{maxMessages: 64, maxBytes: 1 << 20, writeTimeout: 10 * time.Second})
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // a reset: the next writes fail
	deadline := time.Now().Add(10 * time.Second)
	for !c.isClosing() {
		if time.Now().After(deadline) {
			t.Fatal("direct writes to a reset peer did not close the connection")
		}
		if !c.SendDirect([]byte(`"x"`)) {
			break
		}
		time.Sleep(time.Millisecond) // the reset may still be on its way
	}
	<-c.done()
}
