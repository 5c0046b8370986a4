package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cws "github.com/coder/websocket"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/internal/wsdeflate"
	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

// countingConn counts the bytes read from a connection: what came over the
// wire, compressed or not.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// coderClient is a client of coder/websocket, which negotiates
// permessage-deflate when mode asks for it, and counts the bytes it reads.
type coderClient struct {
	t    *testing.T
	c    *cws.Conn
	resp *http.Response
	read *atomic.Int64
	id   int
	// pubs are the publications that reply passed over.
	pubs []protocol.ServerMessage
}

func dialCoder(t *testing.T, url string, mode cws.CompressionMode) *coderClient {
	t.Helper()
	read := new(atomic.Int64)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{nc, read}, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := cws.Dial(ctx, url, &cws.DialOptions{
		HTTPClient:           &http.Client{Transport: tr},
		CompressionMode:      mode,
		CompressionThreshold: 1,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &coderClient{t: t, c: c, resp: resp, read: read}
}

func (c *coderClient) call(method string, params any) {
	c.t.Helper()
	c.id++
	p, _ := json.Marshal(params)
	msg := fmt.Sprintf(`{"id":%d,"method":%q,"params":%s}`, c.id, method, p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, cws.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next line the server sent.
func (c *coderClient) next(buf *[]string) protocol.ServerMessage {
	c.t.Helper()
	for len(*buf) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, b, err := c.c.Read(ctx)
		cancel()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		*buf = strings.Split(string(b), "\n")
	}
	var m protocol.ServerMessage
	if err := json.Unmarshal([]byte((*buf)[0]), &m); err != nil {
		c.t.Fatalf("bad line %q: %v", (*buf)[0], err)
	}
	*buf = (*buf)[1:]
	return m
}

// reply waits for the reply to the last call, failing on an error reply.
func (c *coderClient) reply(buf *[]string) protocol.ServerMessage {
	c.t.Helper()
	for {
		m := c.next(buf)
		if m.Push.Type == protocol.PushPublication {
			c.pubs = append(c.pubs, m)
		}
		if !m.IsPush() && m.ID == uint32(c.id) {
			if m.Error != nil {
				c.t.Fatalf("error reply: %+v", m.Error)
			}
			return m
		}
	}
}

func TestDeflateNegotiatedWithCoderWebsocket(t *testing.T) {
	ts := startServerWith(t, redcast.Config{}, Options{Compression: Compression{Enabled: true, MinSize: 100}}, false)
	url := ts.base + "/connection/websocket"
	sub := dialCoder(t, url, cws.CompressionNoContextTakeover)
	plain := dialCoder(t, url, cws.CompressionDisabled)
	if ext := sub.resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") {
		t.Fatalf("extension answered %q", ext)
	}
	if ext := plain.resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("a client that offered nothing got %q", ext)
	}
	var sbuf, pbuf []string
	for _, c := range []struct {
		c   *coderClient
		buf *[]string
	}{{sub, &sbuf}, {plain, &pbuf}} {
		c.c.call("connect", map[string]any{})
		c.c.reply(c.buf)
		c.c.call("subscribe", map[string]any{"channel": "chat:z"})
		c.c.reply(c.buf)
	}
	// A compressible publication, sent compressed by the client (coder
	// compresses every message with threshold 1) and read back by both.
	data := `{"players":[` + strings.Repeat(`{"name":"somebody","score":1234,"ready":true},`, 100) + `{}]}`
	readBefore := sub.read.Load()
	plainBefore := plain.read.Load()
	sub.call("publish", map[string]any{"channel": "chat:z", "data": json.RawMessage(data)})
	sub.reply(&sbuf)
	for _, c := range []struct {
		c   *coderClient
		buf *[]string
	}{{sub, &sbuf}, {plain, &pbuf}} {
		for {
			var m protocol.ServerMessage
			if len(c.c.pubs) > 0 {
				m, c.c.pubs = c.c.pubs[0], c.c.pubs[1:]
			} else {
				m = c.c.next(c.buf)
			}
			if m.Push.Type == protocol.PushPublication {
				var got, want any
				_ = json.Unmarshal(m.Pub.Data, &got)
				_ = json.Unmarshal([]byte(data), &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("publication data differs")
				}
				break
			}
		}
	}
	subBytes, plainBytes := sub.read.Load()-readBefore, plain.read.Load()-plainBefore
	t.Logf("publication of %d bytes: %d bytes read compressed (with the reply), %d plain", len(data), subBytes, plainBytes)
	if plainBytes < int64(len(data)) || subBytes*5 > plainBytes {
		t.Fatalf("compressed subscriber read %d bytes, plain one %d: want at most a fifth", subBytes, plainBytes)
	}
}

// TestDeflateWire reads the server's frames raw: a broadcast at least
// MinSize long is one compressed frame (RSV1), shorter messages are plain
// and still joined.
func TestDeflateWire(t *testing.T) {
	ts := startServerWith(t, redcast.Config{}, Options{Compression: Compression{Enabled: true, MinSize: 100}}, false)
	d := ws.Dialer{Extensions: offer("permessage-deflate; client_max_window_bits")}
	c := dialWith(t, d, ts.base+"/connection/websocket")
	c.send(`{"id":1,"method":"connect"}` + "\n" + `{"id":2,"method":"subscribe","params":{"channel":"chat:w"}}`)
	h, p := c.frame()
	if h.Rsv != 0 || !strings.Contains(string(p), `"id":1`) {
		t.Fatalf("short replies: rsv %d, %q", h.Rsv, p)
	}
	long := strings.Repeat("abcdefgh", 50)
	c.send(`{"id":3,"method":"publish","params":{"channel":"chat:w","data":"` + long + `"}}`)
	var sawPub bool
	for !sawPub {
		h, p := c.frame()
		if h.Rsv&0x4 != 0 {
			msg, err := wsdeflate.Inflate(nil, p, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			p = msg
		}
		for _, line := range strings.Split(string(p), "\n") {
			if strings.Contains(line, `"push":"publication"`) {
				sawPub = true
				if h.Rsv&0x4 == 0 || !strings.Contains(line, long) {
					t.Fatalf("publication rsv %d: %q", h.Rsv, line)
				}
			}
		}
	}
}

// frame reads the next data frame raw, its header and payload.
func (c *rawConn) frame() (ws.Header, []byte) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			c.t.Fatalf("read header: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			c.t.Fatalf("read payload: %v", err)
		}
		if h.OpCode.IsData() {
			return h, p
		}
	}
}

// TestDeflateClientBomb sends a compressed message that inflates past the
// frame limit: the server refuses it as too large (3501) without
// inflating it whole.
func TestDeflateClientBomb(t *testing.T) {
	ts := startServerWith(t, redcast.Config{MaxFrameSize: 8192}, Options{Compression: Compression{Enabled: true}}, false)
	d := ws.Dialer{Extensions: offer("permessage-deflate")}
	c := dialWith(t, d, ts.base+"/connection/websocket")
	var comp wsdeflate.Compressor
	payload := comp.Compress(nil, bytes.Repeat([]byte(" "), 4<<20))
	if len(payload) > 8192 {
		t.Fatalf("bomb of %d bytes does not fit the frame limit", len(payload))
	}
	h := wsframe.ClientHeader(ws.OpText, len(payload))
	h.Rsv = 0x4
	if _, err := c.nc.Write(wsframe.AppendFrame(nil, h, payload)); err != nil {
		t.Fatal(err)
	}
	got, _ := c.read()
	if !strings.Contains(got, `"code":3501`) {
		t.Fatalf("got %q, want disconnect 3501", got)
	}
}

// TestDeflateRsvWithoutNegotiation: a compressed frame on a connection
// that did not negotiate compression is a protocol violation.
func TestDeflateRsvWithoutNegotiation(t *testing.T) {
	ts := startServerWith(t, redcast.Config{}, Options{Compression: Compression{Enabled: true}}, false)
	c := dial(t, ts.base+"/connection/websocket")
	var comp wsdeflate.Compressor
	payload := comp.Compress(nil, []byte(`{"id":1,"method":"connect"}`))
	h := wsframe.ClientHeader(ws.OpText, len(payload))
	h.Rsv = 0x4
	if _, err := c.nc.Write(wsframe.AppendFrame(nil, h, payload)); err != nil {
		t.Fatal(err)
	}
	got, _ := c.read()
	if !strings.Contains(got, fmt.Sprintf(`"code":%d`, protocol.DisconnectBadFrame.Code)) {
		t.Fatalf("got %q, want disconnect %d", got, protocol.DisconnectBadFrame.Code)
	}
}

// offer parses a Sec-WebSocket-Extensions offer for ws.Dialer.
func offer(s string) []httphead.Option {
	opts, _ := httphead.ParseOptions([]byte(s), nil)
	return opts
}
