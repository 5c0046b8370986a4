package sse_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/transport/sse"
)

// byChannel splits publications by channel.
func byChannel(msgs []message) map[string][]message {
	out := make(map[string][]message)
	for _, m := range msgs {
		out[m.Channel] = append(out[m.Channel], m)
	}
	return out
}

// TestStream: a stream of two channels gets the connect event, a subscribe
// event per channel, and then the publications of both in offset order,
// every event with an id.
func TestStream(t *testing.T) {
	n := startNode(t, redcast.Config{PingInterval: 50 * time.Millisecond}, sse.Options{})
	s := open(t, n.streamURL("name=alice", "chat:a", "b", "chat:a"), nil)
	if cc := s.res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	conn, subs := s.connect(2)
	if !strings.Contains(conn.raw, `"client":`) {
		t.Errorf("connect event without the client id")
	}
	for _, ch := range []string{"chat:a", "b"} {
		if sub := subs[ch]; !sub.Recoverable || sub.Recovered || sub.Since != nil || sub.Epoch == "" {
			t.Errorf("subscribe event of %s: %+v, want recoverable, not recovered, no since", ch, sub)
		}
	}
	n.publish(t, "chat:a", 3, 100)
	n.publish(t, "b", 2, 100)
	msgs, _ := s.pubs(5)
	got := byChannel(msgs)
	checkPubs(t, "chat:a", got["chat:a"], "chat:a", 1)
	checkPubs(t, "b", got["b"], "b", 1)
	if len(got["chat:a"]) != 3 || string(got["chat:a"][0].Pub.Data) != `{"n":1}` {
		t.Errorf("chat:a publications %+v", got["chat:a"])
	}
	select {
	case <-s.pings:
	case <-time.After(waitTimeout):
		t.Errorf("no ping comment on an idle stream")
	}
}

// TestRecovery: a client that reconnects with the Last-Event-ID of the
// last event it saw gets exactly the publications it missed on both of its
// channels, then the live ones; an id of an earlier event recovers from
// there.
func TestRecovery(t *testing.T) {
	n := startNode(t, redcast.Config{}, sse.Options{})
	url := n.streamURL("", "chat:x", "chat:y")
	s := open(t, url, nil)
	s.connect(2)
	n.publish(t, "chat:x", 3, 100)
	n.publish(t, "chat:y", 3, 100)
	_, ids := s.pubs(6)
	last := s.lastID
	s.close()
	waitFor(t, "the first stream to close", func() bool { return n.node.NumClients() == 0 })

	n.publish(t, "chat:x", 2, 100) // 4, 5
	n.publish(t, "chat:y", 4, 100) // 4 … 7

	s2 := open(t, url, http.Header{"Last-Event-ID": {last}})
	_, subs := s2.connect(2)
	for ch, want := range map[string]uint64{"chat:x": 5, "chat:y": 7} {
		sub := subs[ch]
		if !sub.Recovered || sub.Since == nil || sub.Since.Offset != 3 || sub.Offset != want {
			t.Errorf("%s: subscribe event %+v, want recovered since 3 up to %d", ch, sub, want)
		}
	}
	msgs, _ := s2.pubs(6)
	got := byChannel(msgs)
	checkPubs(t, "recovered x", got["chat:x"], "chat:x", 4)
	checkPubs(t, "recovered y", got["chat:y"], "chat:y", 4)
	if len(got["chat:x"]) != 2 || len(got["chat:y"]) != 4 {
		t.Fatalf("recovered %d and %d publications, want 2 and 4", len(got["chat:x"]), len(got["chat:y"]))
	}
	n.publish(t, "chat:x", 1, 100)
	live, _ := s2.pubs(1)
	checkPubs(t, "live after recovery", live, "chat:x", 6)

	// The id of the first stream's first publication (x at 1, y at 0: the
	// memory broker delivers as it publishes) names every channel's
	// position at that time; with the lastEventId parameter, as a new
	// EventSource passes it, the stream continues from there.
	s3 := open(t, url+"&lastEventId="+ids[0], nil)
	_, subs = s3.connect(2)
	if !subs["chat:x"].Recovered || !subs["chat:y"].Recovered {
		t.Fatalf("subscribe events %+v, want both recovered", subs)
	}
	msgs, _ = s3.pubs(5 + 7)
	got = byChannel(msgs)
	checkPubs(t, "x from the first id", got["chat:x"], "chat:x", 2)
	checkPubs(t, "y from the first id", got["chat:y"], "chat:y", 1)
}

// TestRecoveryFails: when history cannot cover the gap, or the id is not
// one the server made, the subscribe event says recovered false, and the
// latest history publications asked for follow.
func TestRecoveryFails(t *testing.T) {
	ns := auth.DefaultNamespaces()
	small := ns["chat"]
	small.HistorySize = 5
	ns["small"] = small
	n := startNode(t, redcast.Config{Namespaces: ns}, sse.Options{})
	url := n.streamURL("history=2", "small:z", "chat:ok")
	s := open(t, url, nil)
	s.connect(2)
	n.publish(t, "small:z", 1, 5)
	n.publish(t, "chat:ok", 1, 100)
	s.pubs(2)
	last := s.lastID
	s.close()
	waitFor(t, "the first stream to close", func() bool { return n.node.NumClients() == 0 })

	pos := n.publish(t, "small:z", 10, 5) // offsets 2 … 11; history keeps 7 … 11

	s2 := open(t, url, http.Header{"Last-Event-ID": {last}})
	_, subs := s2.connect(2)
	if z := subs["small:z"]; z.Recovered || z.Since == nil || z.Since.Offset != 1 || z.Offset != pos.Offset {
		t.Errorf("small:z subscribe event %+v, want not recovered, since 1, at %d", z, pos.Offset)
	}
	if ok := subs["chat:ok"]; !ok.Recovered {
		t.Errorf("chat:ok subscribe event %+v, want recovered (nothing missed)", ok)
	}
	msgs, _ := s2.pubs(2)
	checkPubs(t, "latest history of small:z", msgs, "small:z", 10)

	for _, id := range []string{"garbage!", "AQ", strings.Repeat("A", sse.MaxIDLength+1)} {
		s3 := open(t, url, http.Header{"Last-Event-ID": {id}})
		_, subs := s3.connect(2)
		for ch, sub := range subs {
			if sub.Recovered || sub.Since != nil {
				t.Errorf("id %.10q: %s subscribe event %+v, want not recovered, no since", id, ch, sub)
			}
		}
		s3.close()
	}
}

// TestRefusals: a request the server will not serve gets an HTTP error
// with the protocol error code in a JSON body, before any subscription.
func TestRefusals(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-sse")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ns := auth.DefaultNamespaces()
	ns["members"] = auth.Namespace{Subscribe: auth.SubscribeAuthenticated, HistorySize: 10}
	n := startNode(t, redcast.Config{Verifier: v, Namespaces: ns, MaxChannels: 3},
		sse.Options{AllowedOrigins: []string{"https://allowed.example"}})
	good, err := auth.Mint(secret, auth.MintOptions{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}).SignedString(secret)
	bad, _ := auth.Mint([]byte("another-secret-another-secret-32b"), auth.MintOptions{User: "alice"})

	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		status int
		code   uint32
	}{
		{"no channel", n.url, nil, 400, 101},
		{"invalid channel", n.streamURL("", "chat:a%20b"), nil, 400, 105},
		{"unknown namespace", n.streamURL("", "nope:x"), nil, 400, 106},
		{"too many channels", n.streamURL("", "a", "b", "c", "d"), nil, 400, 109},
		{"bad history", n.streamURL("history=1001", "a"), nil, 400, 101},
		{"bad join_leave", n.streamURL("join_leave=yes", "a"), nil, 400, 101},
		{"name too long", n.streamURL("name="+strings.Repeat("n", 65), "a"), nil, 400, 101},
		{"anonymous in members", n.streamURL("", "a", "members:x"), nil, 403, 107},
		{"user-limited channel of another user", n.streamURL("token="+good, "members:#bob,carol"), nil, 403, 107},
		{"bad token", n.streamURL("token="+bad, "a"), nil, 401, 114},
		{"expired token", n.streamURL("", "a"), http.Header{"Authorization": {"Bearer " + expired}}, 401, 115},
		{"not a bearer", n.streamURL("", "a"), http.Header{"Authorization": {"Basic YTpi"}}, 401, 114},
		{"other origin", n.streamURL("", "a"), http.Header{"Origin": {"https://evil.example"}}, 403, 107},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, res := tryOpen(t, tc.url, tc.header)
			if s != nil {
				t.Fatalf("stream opened, want HTTP %d", tc.status)
			}
			var body struct {
				Error protocol.Error `json:"error"`
			}
			raw, _ := io.ReadAll(res.Body)
			if err := json.Unmarshal(raw, &body); err != nil || res.StatusCode != tc.status || body.Error.Code != tc.code {
				t.Errorf("HTTP %d %s, want %d with error %d", res.StatusCode, raw, tc.status, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
	if got := n.node.NumClients(); got != 0 {
		t.Errorf("%d clients left after refusals", got)
	}

	// What is allowed: a token in the header, an allowed origin (answered
	// with CORS), the user's own user-limited channel.
	s := open(t, n.streamURL("", "members:x", "members:#alice,bob"), http.Header{
		"Authorization": {"Bearer " + good},
		"Origin":        {"https://allowed.example"},
	})
	if got := s.res.Header.Get("Access-Control-Allow-Origin"); got != "https://allowed.example" {
		t.Errorf("Access-Control-Allow-Origin %q, want the allowed origin", got)
	}
	conn, _ := s.connect(2)
	if conn.User != "alice" {
		t.Errorf("connect event %+v, want user alice", conn)
	}
}

// TestRequireToken: a node that refuses anonymous clients answers a stream
// without a token with 401.
func TestRequireToken(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte("0123456789abcdef0123456789abcdef-sse")})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, redcast.Config{Verifier: v, RequireToken: true}, sse.Options{})
	_, res := tryOpen(t, n.streamURL("", "a"), nil)
	if res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous stream on a node requiring tokens: %v, want 401", res.Status)
	}
}

// TestSlowConsumer: a client that stops reading is disconnected once its
// queue overflows, while another stream of the same channel gets every
// publication and the publisher is never held up.
func TestSlowConsumer(t *testing.T) {
	const ch = "chat:firehose"
	n := startNode(t, redcast.Config{QueueMaxMessages: 128, QueueMaxBytes: 256 << 10, WriteTimeout: 200 * time.Millisecond}, sse.Options{})
	fast := open(t, n.streamURL("join_leave=1", ch), nil)
	conn, _ := fast.connect(1)
	var fastInfo protocol.ConnectResult
	_ = json.Unmarshal([]byte(conn.raw), &fastInfo)

	// The slow client reads its connect event, then nothing: a small
	// receive buffer makes the server's writes block sooner.
	nc, err := net.Dial("tcp", strings.TrimPrefix(strings.Split(n.url, "/connection")[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	path := strings.TrimPrefix(n.streamURL("", ch), strings.Split(n.url, "/connection")[0])
	if _, err := io.WriteString(nc, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	var slowID string
	for slowID == "" {
		var info protocol.ClientInfo
		_ = json.Unmarshal(fast.nextPush(protocol.PushJoin).Msg.Client, &info)
		if info.Client != fastInfo.Client {
			slowID = info.Client
		}
	}

	data := []byte(`{"text":"` + strings.Repeat("x", 4<<10) + `"}`)
	published := 0
	left := false
	for !left {
		if published >= 5000 {
			t.Fatalf("slow client still subscribed after %d publications", published)
		}
		for range 20 {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_, err := n.broker.Publish(ctx, ch, data, broker.PublishOptions{HistorySize: 100})
			cancel()
			if err != nil {
				t.Fatalf("publish %d: %v (the publisher must not be held up)", published+1, err)
			}
			published++
		}
		for got := 0; got < 20; {
			ev := fast.next()
			switch ev.Msg.Push {
			case protocol.PushPublication:
				got++
			case protocol.PushLeave:
				left = left || strings.Contains(string(ev.Msg.Client), slowID)
			}
		}
	}
	t.Logf("slow client disconnected after %d publications", published)
	waitFor(t, "the slow client to be gone", func() bool { return n.node.NumClients() == 1 })
	n.publish(t, ch, 1, 100)
	for {
		if ev := fast.next(); ev.Msg.Push == protocol.PushPublication {
			if ev.Msg.Pub.Offset != uint64(published+1) {
				t.Fatalf("fast stream: offset %d after %d publications", ev.Msg.Pub.Offset, published)
			}
			break
		}
	}
}

// TestShutdown: the node's Shutdown ends every stream with a final
// disconnect event advising to reconnect, and the handlers return.
func TestShutdown(t *testing.T) {
	n := startNode(t, redcast.Config{}, sse.Options{Retry: time.Second})
	s := open(t, n.streamURL("", "chat:a"), nil)
	s.connect(1)
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := n.node.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a stream's handler did not return)", err)
	}
	checkFinal(t, s.expectEnd(), protocol.DisconnectShutdown.Code, time.Second)
}

// TestDrain: an http.Server whose Shutdown runs Handler.Drain returns at
// once instead of waiting for the streams, which end with 3001; new
// streams are refused.
func TestDrain(t *testing.T) {
	node := redcast.NewNode(redcast.Config{}, redcast.Deps{})
	if err := node.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := sse.NewHandler(node, sse.Options{})
	srv := &http.Server{Handler: h}
	srv.RegisterOnShutdown(h.Drain)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/?channel=chat:a"
	s := open(t, url, nil)
	s.connect(1)

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("http.Server.Shutdown: %v", err)
	}
	checkFinal(t, s.expectEnd(), protocol.DisconnectShutdown.Code, sse.DefaultRetry)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("stream after Drain: HTTP %d, want 503", rec.Code)
	}
	if err := node.Shutdown(ctx); err != nil {
		t.Errorf("node shutdown: %v", err)
	}
}

// checkFinal fails unless the last event is a disconnect with code that
// advises to reconnect after a delay between retry and 2×retry.
func checkFinal(t *testing.T, evs []event, code uint16, retry time.Duration) {
	t.Helper()
	if len(evs) == 0 {
		t.Fatalf("stream ended without a final event")
	}
	last := evs[len(evs)-1]
	if last.Msg.Push != protocol.PushDisconnect || last.Msg.Code != code || !last.Msg.Reconnect || last.ID == "" {
		t.Fatalf("final event %q (id %q), want a disconnect %d advising to reconnect, with an id", last.Data, last.ID, code)
	}
	d, err := time.ParseDuration(last.Retry + "ms")
	if err != nil || d < retry || d > 2*retry {
		t.Errorf("final retry %q, want between %v and %v", last.Retry, retry, 2*retry)
	}
}

// TestTokenExpires: when the token expires the stream gets the refresh
// push, and after the grace period it ends with 3006.
func TestTokenExpires(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-sse")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, redcast.Config{Verifier: v, RefreshGrace: 100 * time.Millisecond}, sse.Options{})
	tok, err := auth.Mint(secret, auth.MintOptions{User: "alice", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, n.streamURL("token="+tok, "chat:a"), nil)
	s.connect(1)
	s.nextPush(protocol.PushRefresh)
	checkFinal(t, s.expectEnd(), protocol.DisconnectTokenExpired.Code, sse.DefaultRetry)
}

// TestJoinLeaveOnRequest: a stream gets join and leave events only with
// join_leave=1.
func TestJoinLeaveOnRequest(t *testing.T) {
	const ch = "chat:who"
	n := startNode(t, redcast.Config{}, sse.Options{})
	quiet := open(t, n.streamURL("", ch), nil)
	quiet.connect(1)
	asker := open(t, n.streamURL("join_leave=1", ch), nil)
	asker.connect(1)
	visitor := open(t, n.streamURL("", ch), nil)
	conn, _ := visitor.connect(1)
	var info protocol.ConnectResult
	_ = json.Unmarshal([]byte(conn.raw), &info)
	for { // the visitor's join, after the asker's own
		if j := asker.nextPush(protocol.PushJoin); strings.Contains(string(j.Msg.Client), info.Client) {
			break
		}
	}
	n.publish(t, ch, 1, 100)
	// The publication follows every join that came before it.
	for {
		ev := quiet.next()
		if ev.Msg.Push == protocol.PushPublication {
			break
		}
		if ev.Msg.Push == protocol.PushJoin || ev.Msg.Push == protocol.PushLeave {
			t.Fatalf("a stream without join_leave=1 got %s", ev.Data)
		}
	}
}
