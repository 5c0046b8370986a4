package websocket

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startNode serves a node's WebSocket endpoints on a free port and returns
// the ws:// base URL.
func startNode(t *testing.T, cfg redcast.Config) (string, *redcast.Node) {
	t.Helper()
	ts := startServer(t, cfg, false)
	return ts.base, ts.node
}

// testServer is a node served by a Handler on a free port.
type testServer struct {
	base string // ws:// or wss:// base URL
	node *redcast.Node
	h    *Handler
	srv  *httptest.Server
}

// startServer serves a node's WebSocket endpoints on a free port, with TLS
// if tls is set. When the test ends the node shuts down and the Handler
// closes.
func startServer(t *testing.T, cfg redcast.Config, tls bool) *testServer {
	t.Helper()
	return startServerWith(t, cfg, Options{}, tls)
}

// startServerWith is startServer with the Handler's options.
func startServerWith(t *testing.T, cfg redcast.Config, opts Options, tls bool) *testServer {
	t.Helper()
	node := redcast.NewNode(cfg, redcast.Deps{})
	if err := node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := NewHandler(node, opts)
	mux := http.NewServeMux()
	mux.Handle("GET /connection/websocket", h.Protocol())
	mux.Handle("GET /rooms/{room}", h.Plain())
	srv := httptest.NewUnstartedServer(mux)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("close handler: %v", err)
		}
		srv.Close()
	})
	return &testServer{base: "ws" + strings.TrimPrefix(srv.URL, "http"), node: node, h: h, srv: srv}
}

type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, url string) *rawConn {
	t.Helper()
	return dialWith(t, ws.DefaultDialer, url)
}

func dialWith(t *testing.T, d ws.Dialer, url string) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { nc.Close() })
	if br == nil {
		br = bufio.NewReader(nc)
	}
	return &rawConn{t: t, nc: nc, br: br}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.nc, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next data frame's payload, failing after 5 seconds.
func (c *rawConn) read() (string, ws.OpCode) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	msgs, err := wsutil.ReadServerMessage(c.br, nil)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	for _, m := range msgs {
		if m.OpCode.IsData() || m.OpCode == ws.OpClose {
			return string(m.Payload), m.OpCode
		}
	}
	return c.read()
}

// lines reads frames until n lines arrived.
func (c *rawConn) lines(n int) []string {
	c.t.Helper()
	var out []string
	for len(out) < n {
		f, op := c.read()
		if op != ws.OpText {
			c.t.Fatalf("got opcode %v (%q) while waiting for %d lines, have %q", op, f, n, out)
		}
		out = append(out, strings.Split(f, "\n")...)
	}
	return out
}

func TestProtocolRoundTrip(t *testing.T) {
	base, _ := startNode(t, redcast.Config{})
	c := dial(t, base+"/connection/websocket")
	c.send(`{"id":1,"method":"connect","params":{"name":"alice"}}` + "\n" +
		`{"id":2,"method":"subscribe","params":{"channel":"chat:x","join_leave":true}}` + "\n" +
		`{"id":3,"method":"publish","params":{"channel":"chat:x","data":{"text":"hi"}}}`)
	got := c.lines(4) // connect, subscribe, own join, publish reply and the publication (order of the last three may vary)
	for len(got) < 5 {
		got = append(got, c.lines(1)...)
	}
	var sawPub bool
	for _, l := range got {
		var m protocol.ServerMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		if m.Error != nil {
			t.Fatalf("error reply: %s", l)
		}
		if m.Push.Type == protocol.PushPublication {
			sawPub = true
			if string(m.Pub.Data) != `{"text":"hi"}` || m.Pub.Offset != 1 || m.Pub.From == nil || string(m.Pub.From.Info) != `{"name":"alice"}` {
				t.Fatalf("publication = %s", l)
			}
		}
	}
	if !sawPub {
		t.Fatalf("no publication among %q", got)
	}
}

func TestPlainRoom(t *testing.T) {
	base, _ := startNode(t, redcast.Config{})
	a := dial(t, base+"/rooms/r1?name=a")
	b := dial(t, base+"/rooms/r1?name=b")
	full := dial(t, base+"/connection/websocket")
	full.send(`{"id":1,"method":"connect"}` + "\n" + `{"id":2,"method":"subscribe","params":{"channel":"chat:r1"}}`)
	full.lines(2)
	// Plain clients join after the upgrade: wait until both are in presence.
	for id := 3; ; id++ {
		full.send(fmt.Sprintf(`{"id":%d,"method":"presence","params":{"channel":"chat:r1"}}`, id))
		var res struct {
			Result protocol.PresenceResult `json:"result"`
		}
		for _, l := range full.lines(1) {
			if strings.HasPrefix(l, fmt.Sprintf(`{"id":%d,`, id)) {
				if err := json.Unmarshal([]byte(l), &res); err != nil {
					t.Fatal(err)
				}
			}
		}
		if len(res.Result.Clients) == 3 {
			break
		}
		if id > 1000 {
			t.Fatal("plain clients never joined")
		}
	}
	a.send("hello <b>")
	if got, _ := b.read(); got != "hello <b>" {
		t.Fatalf("b got %q", got)
	}
	full.send(`{"id":99999,"method":"publish","params":{"channel":"chat:r1","data":{"text":"from full"}}}`)
	if got, _ := a.read(); got != "from full" {
		t.Fatalf("a got %q (want no echo of its own message)", got)
	}
}

func TestFrameTooLarge(t *testing.T) {
	base, _ := startNode(t, redcast.Config{MaxFrameSize: 1024})
	c := dial(t, base+"/connection/websocket")
	c.send(strings.Repeat("x", 2000))
	got, _ := c.read()
	if !strings.Contains(got, `"code":3501`) {
		t.Fatalf("got %q, want disconnect 3501", got)
	}
	payload, op := c.read()
	if op != ws.OpClose {
		t.Fatalf("got opcode %v, want close", op)
	}
	if code, _ := ws.ParseCloseFrameData([]byte(payload)); code != 3501 {
		t.Fatalf("close code %d, want 3501", code)
	}
}
