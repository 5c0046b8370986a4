package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
)

// The reader holds no buffer while it waits, and a connection's read loop
// parks (or moves to a fresh goroutine) when it goes idle: these tests
// cover the edges of that, where bytes are already there or a message is
// half read. park_test.go covers what a parked connection must still do.

// TestFramesWithUpgradeRequest sends the first frame in the same write as
// the upgrade request: the bytes net/http read past the request must be
// the first the reader sees.
func TestFramesWithUpgradeRequest(t *testing.T) {
	base, _ := startNode(t, redcast.Config{})
	addr := strings.TrimPrefix(base, "ws://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET /connection/websocket HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame := clientFrame(ws.OpText, true, []byte(`{"id":1,"method":"connect"}`+"\n"+`{"id":2,"method":"ping"}`))
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c := &rawConn{t: t, nc: nc, br: br}
	if got := strings.Join(c.lines(2), "\n"); !strings.Contains(got, `"id":1,`) || !strings.Contains(got, `"id":2,`) {
		t.Fatalf("replies %q", got)
	}
}

// TestFragmentsAcrossIdle sends a message in fragments with pauses
// between them, and several commands one at a time: each wait for the
// peer, in the middle of a message or between messages, must lose nothing.
func TestFragmentsAcrossIdle(t *testing.T) {
	base, _ := startNode(t, redcast.Config{})
	c := dial(t, base+"/connection/websocket")
	msg := `{"id":1,"method":"connect"}`
	for i, part := range []string{msg[:5], msg[5:12], msg[12:]} {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		if _, err := c.nc.Write(clientFrame(op, i == 2, []byte(part))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := c.lines(1)[0]; !strings.HasPrefix(got, `{"id":1,"result"`) {
		t.Fatalf("connect reply %q", got)
	}
	for id := 2; id < 6; id++ {
		c.send(fmt.Sprintf(`{"id":%d,"method":"ping"}`, id))
		if got := c.lines(1)[0]; got != fmt.Sprintf(`{"id":%d,"result":{}}`, id) {
			t.Fatalf("ping reply %q", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestControlFramesBetweenMessages: after control frames outside a
// message, with nothing more to read, next returns errDrained, so that the
// read loop waits for the peer like after a message; inside a fragmented
// message it reads on.
func TestControlFramesBetweenMessages(t *testing.T) {
	read := func(frames ...[]byte) ([]byte, error) {
		c := newConn(&byteConn{r: bytes.NewReader(slices.Concat(frames...))}, hub.FormatProtocol, limits{}, outbox.Options{MaxMessages: 4, MaxBytes: 1024})
		r := newReader(c, nil)
		r.maxSize, r.idle = 1024, time.Second
		return r.next()
	}
	ping := clientFrame(ws.OpPing, true, []byte("p"))
	if msg, err := read(ping, ping); !errors.Is(err, errDrained) {
		t.Fatalf("after pings: %q, %v; want errDrained", msg, err)
	}
	msg, err := read(clientFrame(ws.OpText, false, []byte("he")), ping, clientFrame(ws.OpContinuation, true, []byte("llo")))
	if err != nil || string(msg) != "hello" {
		t.Fatalf("a ping inside a message: %q, %v; want \"hello\"", msg, err)
	}
}
