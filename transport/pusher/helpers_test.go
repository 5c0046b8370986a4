package pusher_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"

	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The app every test serves.
var testApp = pusher.App{ID: "1", Key: "app-key", Secret: "app-secret"}

// start serves a redcast server with testApp and returns its address.
func start(t *testing.T, cfg server.Config) (string, *server.Server) {
	t.Helper()
	if cfg.Pusher.Apps == nil {
		cfg.Pusher.Apps = []pusher.App{testApp}
	}
	return testserver.Start(t, cfg)
}

// message is a Pusher message as the tests read it.
type message struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	UserID  string          `json:"user_id,omitempty"`
}

// dataString returns the data of a server message that holds JSON in a
// string, as that JSON.
func (m message) dataString(t *testing.T) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatalf("data of %s is not a string: %s", m.Event, m.Data)
	}
	return s
}

// client is a raw WebSocket client of the Pusher endpoint.
type client struct {
	t  *testing.T
	nc net.Conn
	// r reads what came with the upgrade response, then nc.
	r io.Reader
}

// dial connects to /app/{key} with query (such as "protocol=7").
func dial(t *testing.T, addr, key, query string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, br, _, err := ws.Dial(ctx, "ws://"+addr+"/app/"+key+"?"+query)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: nc}
	if br != nil {
		c.r = io.MultiReader(br, nc)
	}
	return c
}

// connect dials testApp with protocol 7 and reads
// pusher:connection_established, returning the socket id.
func connect(t *testing.T, addr string) (*client, string) {
	t.Helper()
	c := dial(t, addr, testApp.Key, "protocol=7&client=js&version=8.4.0")
	m := c.read()
	if m.Event != "pusher:connection_established" {
		t.Fatalf("first message %+v, want pusher:connection_established", m)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := json.Unmarshal([]byte(m.dataString(t)), &d); err != nil {
		t.Fatal(err)
	}
	return c, d.SocketID
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.nc, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next message; a close fails the test.
func (c *client) read() message {
	c.t.Helper()
	b, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("frame %q: %v", b, err)
	}
	return m
}

func (c *client) next() ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		b, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{c.r, c.nc})
		if err != nil || op == ws.OpText {
			return b, err
		}
	}
}

// readClose reads until the close frame and returns its code and reason.
func (c *client) readClose() (int, string) {
	c.t.Helper()
	for {
		_, err := c.next()
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return int(closed.Code), closed.Reason
		}
		if err != nil {
			c.t.Fatalf("read: %v, want a close frame", err)
		}
	}
}

// subscribe sends pusher:subscribe and reads the answer.
func (c *client) subscribe(channel, auth string) message {
	c.t.Helper()
	d := map[string]string{"channel": channel}
	if auth != "" {
		d["auth"] = auth
	}
	c.send(map[string]any{"event": "pusher:subscribe", "data": d})
	return c.read()
}

// errorData decodes the data of pusher:error.
func errorData(t *testing.T, m message) (code *int, msg string) {
	t.Helper()
	if m.Event != "pusher:error" {
		t.Fatalf("got %+v, want pusher:error", m)
	}
	var d struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("pusher:error data %s: %v", m.Data, err)
	}
	return d.Code, d.Message
}

// testserverStart serves a redcast server without Pusher apps.
func testserverStart(t *testing.T) (string, *server.Server) {
	t.Helper()
	return testserver.Start(t, server.Config{})
}
