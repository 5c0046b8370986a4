package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// TestPublishRateLimit: publishes over the rate are refused with 116, a
// client that keeps on is disconnected with 3503, and others never notice.
func TestPublishRateLimit(t *testing.T) {
	base, _ := startServer(t, redcast.Config{PublishRate: 1, PublishBurst: 5, MaxRefusals: 10})
	by := newBystander(t, base)
	ctx := testContext(t)
	c := dial(t, base, "flood")
	for i := range 5 {
		if _, err := c.Publish(ctx, "chat:rate", i); err != nil {
			t.Fatalf("publish %d within the burst: %v", i, err)
		}
	}
	_, err := c.Publish(ctx, "chat:rate", 5)
	wantError(t, "publish over the rate", err, protocol.ErrTooManyRequests)
	// MaxRefusals (10) refusals in a row, each answered with 116, then
	// the connection closes with 3503.
	refused := 1
	for range 20 {
		if _, err = c.Publish(ctx, "chat:rate", 0); !errors.Is(err, protocol.ErrTooManyRequests) {
			break
		}
		refused++
	}
	wantDisconnect(t, "a client that keeps on", err, protocol.DisconnectTooManyRequests.Code)
	if refused != 10 {
		t.Errorf("%d publishes answered with 116 before the disconnect, want 10 (MaxRefusals)", refused)
	}
	by.check(t)
}

// TestSubscribeRateLimit: subscribes over the rate are refused with 116.
func TestSubscribeRateLimit(t *testing.T) {
	base, _ := startServer(t, redcast.Config{SubscribeRate: 1, SubscribeBurst: 3})
	ctx := testContext(t)
	c := dial(t, base, "")
	for i := range 3 {
		if _, err := c.Subscribe(ctx, fmt.Sprintf("chat:s%d", i), client.SubscribeOptions{}); err != nil {
			t.Fatalf("subscribe %d within the burst: %v", i, err)
		}
	}
	_, err := c.Subscribe(ctx, "chat:s3", client.SubscribeOptions{})
	wantError(t, "subscribe over the rate", err, protocol.ErrTooManyRequests)
}

// TestPlainRateLimitLosesNothing: a plain client over its publish rate is
// slowed down, not cut off: every message it sent is delivered.
func TestPlainRateLimitLosesNothing(t *testing.T) {
	base, _ := startServer(t, redcast.Config{PublishRate: 20, PublishBurst: 1})
	ctx := testContext(t)
	sub := dial(t, base, "sub")
	if _, err := sub.Subscribe(ctx, "chat:slow", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	p := dialPlain(t, base, "slow", "")
	waitFor(t, "plain client in presence", func() bool {
		cl, err := sub.Presence(ctx, "chat:slow")
		return err == nil && len(cl) == 2
	})
	for i := range 10 {
		p.writeFrame(ws.OpText, true, fmt.Appendf(nil, "m%d", i))
	}
	pubs := sub.waitPubs(t, "chat:slow", 10)
	for i, pub := range pubs {
		if want := fmt.Sprintf(`{"text":"m%d"}`, i); string(pub.Data) != want {
			t.Fatalf("publication %d = %s, want %s", i, pub.Data, want)
		}
	}
}

// TestConnectionLimit: a node with MaxConnections clients refuses more with
// HTTP 503 before the upgrade.
func TestConnectionLimit(t *testing.T) {
	base, _ := startServer(t, redcast.Config{MaxConnections: 2})
	dial(t, base, "one")
	dial(t, base, "two")
	_, err := dialRawDialer(t, ws.Dialer{}, protocolURL(base))
	var se ws.StatusError
	if !errors.As(err, &se) || int(se) != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v, want HTTP 503", err)
	}
}

// TestMaxChannelLength: a shorter configured limit on channel names is
// enforced with error 105.
func TestMaxChannelLength(t *testing.T) {
	base, _ := startServer(t, redcast.Config{MaxChannelLength: 10})
	ctx := testContext(t)
	c := dial(t, base, "")
	if _, err := c.Subscribe(ctx, "chat:12345", client.SubscribeOptions{}); err != nil {
		t.Fatalf("10-byte channel: %v", err)
	}
	_, err := c.Subscribe(ctx, "chat:123456", client.SubscribeOptions{})
	wantError(t, "11-byte channel", err, protocol.ErrInvalidChannel)
}

// TestOriginCheck: browsers from other origins are refused (403) unless
// allowed; same-origin pages and clients without an Origin are accepted.
// Same origin means scheme, host and port: an https page of the same host
// is another origin, and so is one with user information.
func TestOriginCheck(t *testing.T) {
	base := startOriginServer(t, server.Config{AllowedOrigins: []string{"https://app.example"}})
	addr := strings.TrimPrefix(base, "ws://")
	checkOrigins(t, base, "", []originCase{
		{"", true},
		{"http://" + addr, true},
		{"https://app.example", true},
		{"https://evil.example", false},
		{"http://" + strings.Replace(addr, "127.0.0.1", "localhost", 1), false},
		{"https://" + addr, false},
		{"http://user@" + addr, false},
	})
}

// TestOriginPublicURL: with a public URL, the server's own origin is that
// URL's, whatever Host the request carries: a DNS-rebinding page, whose
// Origin and Host agree on the attacker's name, is refused.
func TestOriginPublicURL(t *testing.T) {
	base := startOriginServer(t, server.Config{PublicURL: "https://chat.example", AllowedOrigins: []string{"https://app.example"}})
	checkOrigins(t, base, "rebind.example:8080", []originCase{
		{"", true},
		{"https://chat.example", true},
		{"https://chat.example:443", true},
		{"https://app.example", true},
		{"http://rebind.example:8080", false},
		{"http://" + strings.TrimPrefix(base, "ws://"), false},
	})
}

type originCase struct {
	origin string
	ok     bool
}

// checkOrigins dials both WebSocket endpoints with each Origin (and Host
// header host, when not empty) and checks who is let in.
func checkOrigins(t *testing.T, base, host string, cases []originCase) {
	t.Helper()
	for _, tc := range cases {
		d := ws.Dialer{}
		if tc.origin != "" {
			d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {tc.origin}})
		}
		url := base
		if host != "" {
			// The request names host (its Host header); the connection
			// goes to the server.
			addr := strings.TrimPrefix(base, "ws://")
			d.NetDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			url = "ws://" + host
		}
		for _, path := range []string{"/connection/websocket", "/rooms/x"} {
			_, err := dialRawDialer(t, d, url+path)
			var se ws.StatusError
			switch {
			case tc.ok && err != nil:
				t.Errorf("origin %q on %s refused: %v", tc.origin, path, err)
			case !tc.ok && (!errors.As(err, &se) || int(se) != http.StatusForbidden):
				t.Errorf("origin %q on %s: %v, want HTTP 403", tc.origin, path, err)
			}
		}
	}
}

// startOriginServer serves cfg on a random port until the test ends.
func startOriginServer(t *testing.T, cfg server.Config) string {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "ws://" + ln.Addr().String()
}

// TestHeaderLimit checks the limit docs/security.md gives for request
// headers: 16 KiB are always accepted; 25 KiB are refused with 431 (net/http
// allows 4 KiB over its MaxHeaderBytes, and reads ahead).
func TestHeaderLimit(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	addr := strings.TrimPrefix(base, "ws://")
	status := func(size int) int {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(waitTimeout))
		head := "GET /healthz HTTP/1.1\r\nHost: x\r\n"
		pad := size - len(head) - len("X-Pad: \r\n\r\n")
		req := head + "X-Pad: " + strings.Repeat("a", pad) + "\r\n\r\n"
		if _, err := io.WriteString(nc, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("headers of %d bytes: %v", size, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(16 << 10); s == http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of 16 KiB answered %d, want them accepted", s)
	}
	if s := status(25 << 10); s != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("headers of 25 KiB answered %d, want 431", s)
	}
}
