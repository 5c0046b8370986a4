// Package pushertest is a raw client of redcast's Pusher endpoint for
// tests: it sends and reads Pusher messages over a WebSocket as they are
// on the wire, so that tests see exactly what a Pusher library would.
package pushertest

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
)

// Timeout bounds a dial and each read.
const Timeout = 10 * time.Second

// Message is a Pusher message.
type Message struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	UserID  string          `json:"user_id,omitempty"`
}

// DataString returns the data of a server message that holds JSON in a
// string, as that JSON.
func (m Message) DataString(t testing.TB) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m.Data, &s); err != nil {
		t.Fatalf("data of %s is not a string: %s", m.Event, m.Data)
	}
	return s
}

// Client is a raw WebSocket client of the Pusher endpoint. It is closed
// when the test ends.
type Client struct {
	t  testing.TB
	NC net.Conn
	// r reads what came with the upgrade response, then NC.
	r io.Reader
}

// Dial connects to ws://addr/app/{key}?query.
func Dial(t testing.TB, addr, key, query string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	nc, br, _, err := ws.Dial(ctx, "ws://"+addr+"/app/"+key+"?"+query)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &Client{t: t, NC: nc, r: nc}
	if br != nil {
		c.r = io.MultiReader(br, nc)
	}
	return c
}

// Connect dials with protocol 7 and reads pusher:connection_established,
// returning the socket id.
func Connect(t testing.TB, addr, key string) (*Client, string) {
	t.Helper()
	c := Dial(t, addr, key, "protocol=7&client=js&version=8.4.0")
	m := c.Read()
	if m.Event != "pusher:connection_established" {
		t.Fatalf("first message %+v, want pusher:connection_established", m)
	}
	var d struct {
		SocketID string `json:"socket_id"`
	}
	if err := json.Unmarshal([]byte(m.DataString(t)), &d); err != nil {
		t.Fatal(err)
	}
	return c, d.SocketID
}

// Send sends v as JSON.
func (c *Client) Send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.SendRaw(b)
}

// SendRaw sends b as a text frame.
func (c *Client) SendRaw(b []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientText(c.NC, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Read returns the next message; a close fails the test.
func (c *Client) Read() Message {
	c.t.Helper()
	b, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("frame %q: %v", b, err)
	}
	return m
}

func (c *Client) next() ([]byte, error) {
	_ = c.NC.SetReadDeadline(time.Now().Add(Timeout))
	for {
		b, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{c.r, c.NC})
		if err != nil || op == ws.OpText {
			return b, err
		}
	}
}

// ReadClose reads until the close frame and returns its code and reason.
func (c *Client) ReadClose() (int, string) {
	c.t.Helper()
	code, reason, err := c.WaitClose()
	if err != nil {
		c.t.Fatalf("read: %v, want a close frame", err)
	}
	return code, reason
}

// WaitClose is ReadClose for another goroutine than the test's: it returns
// what fails instead of failing the test.
func (c *Client) WaitClose() (int, string, error) {
	for {
		_, err := c.next()
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return int(closed.Code), closed.Reason, nil
		}
		if err != nil {
			return 0, "", err
		}
	}
}

// Subscribe sends pusher:subscribe and reads the answer.
func (c *Client) Subscribe(channel, auth string) Message {
	c.t.Helper()
	d := map[string]string{"channel": channel}
	if auth != "" {
		d["auth"] = auth
	}
	c.Send(map[string]any{"event": "pusher:subscribe", "data": d})
	return c.Read()
}

// JoinPresence subscribes to a presence channel as user (with user_info
// {"name": user}) and returns the members subscription_succeeded lists.
func (c *Client) JoinPresence(key, secret, socketID, channel, user string) map[string]any {
	c.t.Helper()
	auth, data := PresenceAuth(key, secret, socketID, channel, user, `{"name":"`+user+`"}`)
	c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth, "channel_data": data}})
	m := c.Read()
	if m.Event != "pusher_internal:subscription_succeeded" {
		c.t.Fatalf("presence subscribe: %+v", m)
	}
	var d struct {
		Presence map[string]any `json:"presence"`
	}
	if err := json.Unmarshal([]byte(m.DataString(c.t)), &d); err != nil {
		c.t.Fatal(err)
	}
	return d.Presence
}

// ErrorData decodes the data of pusher:error.
func ErrorData(t testing.TB, m Message) (code *int, msg string) {
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
