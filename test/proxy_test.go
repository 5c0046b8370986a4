package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/proxy"
	"github.com/redcast/redcast/server"
)

// centrifugoRequest is a proxy request as Centrifugo's documentation
// describes its fields (written from the docs, not from package proxy, so
// that a wrong field name in redcast fails here). Centrifugo's own Go
// types live in an internal package of its module and cannot be imported.
type centrifugoRequest struct {
	Client    string          `json:"client"`
	Transport string          `json:"transport"`
	Protocol  string          `json:"protocol"`
	Encoding  string          `json:"encoding"`
	User      *string         `json:"user"`
	Channel   string          `json:"channel"`
	Method    string          `json:"method"`
	Name      string          `json:"name"`
	Data      json.RawMessage `json:"data"`
	B64Data   string          `json:"b64data"`
	Meta      json.RawMessage `json:"meta"`
}

// backend is a test application backend: answer returns the reply body
// (and status) for each call, by path; calls records what it was sent.
type backend struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []backendCall
	answer func(path string, req centrifugoRequest, h http.Header) (int, string)
}

type backendCall struct {
	path   string
	req    centrifugoRequest
	header http.Header
}

func startBackend(t *testing.T, answer func(path string, req centrifugoRequest, h http.Header) (int, string)) *backend {
	b := &backend{answer: answer}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req centrifugoRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &req) != nil {
			t.Errorf("backend: bad request %s %s %q", r.Method, r.Header.Get("Content-Type"), body)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.calls = append(b.calls, backendCall{r.URL.Path, req, r.Header.Clone()})
		b.mu.Unlock()
		status, reply := b.answer(r.URL.Path, req, r.Header)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) callsTo(path string) []backendCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backendCall
	for _, c := range b.calls {
		if c.path == path {
			out = append(out, c)
		}
	}
	return out
}

// startProxied starts a server whose proxies call b at /connect, /refresh,
// /subscribe, /publish and /rpc (an empty path of paths: all of them),
// forwarding the Cookie and X-Test headers.
func startProxied(t *testing.T, b *backend, timeout time.Duration, nss map[string]auth.Namespace, paths ...string) (string, string) {
	t.Helper()
	px := proxy.New(proxy.Config{Timeout: timeout, Headers: []string{"Cookie", "x-test"}})
	t.Cleanup(px.CloseIdleConnections)
	pc := redcast.ProxyConfig{Backend: px}
	if len(paths) == 0 {
		paths = []string{"/connect", "/refresh", "/subscribe", "/publish", "/rpc"}
	}
	for _, p := range paths {
		switch p {
		case "/connect":
			pc.ConnectURL = b.URL + p
		case "/refresh":
			pc.RefreshURL = b.URL + p
		case "/subscribe":
			pc.SubscribeURL = b.URL + p
		case "/publish":
			pc.PublishURL = b.URL + p
		case "/rpc":
			pc.RPCURL = b.URL + p
		}
	}
	addr, _ := testserver.Start(t, server.Config{Node: redcast.Config{Proxy: pc, Namespaces: nss}})
	return "ws://" + addr, "http://" + addr
}

// dialWith connects a client sending header with its upgrade.
func dialWith(t *testing.T, base string, header http.Header) (*conn, error) {
	t.Helper()
	rec := &recorder{}
	c, err := client.Dial(testContext(t), protocolURL(base), client.Options{Header: header, OnPush: rec.add})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &conn{Client: c, recorder: rec}, nil
}

func TestProxyConnectNamesTheClientAndSubscribesItServerSide(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		if path == "/connect" && h.Get("Cookie") == "session=s3cret" {
			return 200, `{"result": {"user": "alice", "info": {"name": "Alice"}, "channels": ["news"], "data": {"welcome": true}, "meta": {"plan": "gold"}}}`
		}
		if path == "/connect" {
			return 200, `{"disconnect": {"code": 4501, "reason": "not logged in"}}`
		}
		return 200, `{"result": {}}`
	})
	base, _ := startProxied(t, b, time.Second, nil)

	_, err := dialWith(t, base, nil)
	wantDisconnect(t, "connect without the cookie", err, 4501)

	c, err := dialWith(t, base, http.Header{"Cookie": {"session=s3cret"}, "X-Test": {"1"}, "X-Other": {"not forwarded"}})
	if err != nil {
		t.Fatalf("connect with the cookie: %v", err)
	}
	var sub *protocol.Push
	waitFor(t, "the subscribe push of news", func() bool {
		subs := c.ofType(protocol.PushSubscribe, "news")
		if len(subs) > 0 {
			sub = subs[0]
		}
		return sub != nil
	})
	if sub.Sub == nil {
		t.Fatalf("subscribe push without its subscription: %+v", sub)
	}
	// Another client publishes to news: the server-side subscriber gets it,
	// attributed to its publisher as the backend named it.
	pub, err := dialWith(t, base, http.Header{"Cookie": {"session=s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(testContext(t), "news", map[string]string{"text": "hi"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := c.waitPubs(t, "news", 1)[0]
	if got.From == nil || got.From.User != "alice" || string(got.From.Info) != `{"name":"Alice"}` {
		t.Errorf("publication from %+v, want user alice with the backend's info", got.From)
	}

	calls := b.callsTo("/connect")
	last := calls[len(calls)-1]
	if last.req.Client == "" || last.req.Transport != "websocket" || last.req.Protocol != "json" || last.req.Encoding != "json" {
		t.Errorf("connect request %+v: want client, transport websocket, protocol and encoding json", last.req)
	}
	first := calls[1]
	if first.header.Get("X-Test") != "1" || first.header.Get("X-Other") != "" || first.header.Get("Cookie") != "session=s3cret" {
		t.Errorf("forwarded headers %v: want Cookie and X-Test only", first.header)
	}
	pubs := b.callsTo("/publish")
	if len(pubs) != 1 || pubs[0].req.User == nil || *pubs[0].req.User != "alice" || pubs[0].req.Channel != "news" ||
		string(pubs[0].req.Meta) != `{"plan":"gold"}` || string(pubs[0].req.Data) != `{"text":"hi"}` {
		t.Errorf("publish requests %+v: want alice's publish with the connect proxy's meta", pubs)
	}
}

func TestProxySubscribeAndPublishRefuseAndRewrite(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		switch {
		case path == "/connect":
			return 200, `{"result": {"user": "bob"}}`
		case path == "/subscribe" && req.Channel == "secret":
			return 200, `{"error": {"code": 1403, "message": "not your channel"}}`
		case path == "/subscribe" && req.Channel == "old":
			return 200, `{"error": {"code": 103, "message": "permission denied"}}` // Centrifugo's code
		case path == "/publish" && strings.Contains(string(req.Data), "spam"):
			return 200, `{"error": {"code": 1000, "message": "no spam here"}}`
		case path == "/publish":
			return 200, `{"result": {"data": {"text": "rewritten", "by": "backend"}}}`
		}
		return 200, `{"result": {}}`
	})
	nss := namespaces(map[string]auth.Namespace{"free": {Anonymous: true, Publish: true, PublishProxy: auth.ProxyOff, SubscribeProxy: auth.ProxyOff}})
	base, _ := startProxied(t, b, time.Second, nss)
	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	_, err = c.Subscribe(ctx, "secret", client.SubscribeOptions{})
	wantError(t, "subscribe refused by the backend", err, &protocol.Error{Code: 1403})
	if err == nil || !strings.Contains(err.Error(), "not your channel") {
		t.Errorf("subscribe error %v: want the backend's message", err)
	}
	_, err = c.Subscribe(ctx, "old", client.SubscribeOptions{})
	wantError(t, "subscribe refused with Centrifugo's 103", err, protocol.ErrPermissionDenied)

	if _, err := c.Subscribe(ctx, "room", client.SubscribeOptions{}); err != nil {
		t.Fatalf("subscribe allowed by the backend: %v", err)
	}
	_, err = c.Publish(ctx, "room", map[string]string{"text": "buy spam"})
	wantError(t, "publish refused", err, &protocol.Error{Code: 1000})
	if _, err := c.Publish(ctx, "room", map[string]string{"text": "<b>hi</b>"}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := c.waitPubs(t, "room", 1)
	if string(got[0].Data) != `{"text":"rewritten","by":"backend"}` {
		t.Errorf("published %s, want the backend's data", got[0].Data)
	}

	// A namespace that turns the proxies off is not asked about.
	before := len(b.callsTo("/publish")) + len(b.callsTo("/subscribe"))
	if _, err := c.Subscribe(ctx, "free:x", client.SubscribeOptions{}); err != nil {
		t.Fatalf("subscribe free:x: %v", err)
	}
	if _, err := c.Publish(ctx, "free:x", map[string]string{"text": "spam"}); err != nil {
		t.Fatalf("publish to free:x: %v", err)
	}
	if after := len(b.callsTo("/publish")) + len(b.callsTo("/subscribe")); after != before {
		t.Errorf("the backend was asked %d times about a namespace with its proxies off", after-before)
	}
}

func TestProxyRPC(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		if path == "/rpc" && req.Method == "add" {
			var args []int
			_ = json.Unmarshal(req.Data, &args)
			return 200, fmt.Sprintf(`{"result": {"data": {"sum": %d}}}`, args[0]+args[1])
		}
		if path == "/rpc" {
			return 200, `{"error": {"code": 404, "message": "no such method"}}`
		}
		return 200, `{"result": {"user": "carol"}}`
	})
	base, _ := startProxied(t, b, time.Second, nil)
	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.RPC(testContext(t), "add", []int{2, 3})
	if err != nil || string(got) != `{"sum":5}` {
		t.Errorf("rpc add: %s, %v; want {\"sum\": 5}", got, err)
	}
	_, err = c.RPC(testContext(t), "nope", nil)
	wantError(t, "rpc of an unknown method", err, &protocol.Error{Code: 404})

	// Without an rpc proxy, rpc is not available.
	base2, _ := startProxied(t, b, time.Second, nil, "/connect")
	c2, err := dialWith(t, base2, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c2.RPC(testContext(t), "add", []int{1, 1})
	wantError(t, "rpc without a proxy", err, protocol.ErrNotAvailable)
}

// TestProxyBackendFailures: a backend that is slow (past the timeout),
// down, answers garbage or HTTP 500 gives the client error 117 saying
// which, soon, counted in metrics; meanwhile another client of the node is
// served as usual.
func TestProxyBackendFailures(t *testing.T) {
	release := make(chan struct{})
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		switch req.Method {
		case "slow":
			<-release
			return 200, `{"result": {}}`
		case "garbage":
			return 200, `<html>oops</html>`
		case "500":
			return 500, `{"result": {}}`
		case "badresult":
			return 200, `{"result": {"data": "not json`
		}
		return 200, `{"result": {}}`
	})
	t.Cleanup(func() { close(release) }) // before the backend closes, which waits for its handlers
	const timeout = 300 * time.Millisecond
	base, httpBase := startProxied(t, b, timeout, nil, "/rpc")
	c := dial(t, base, "a")
	other := dial(t, base, "b")
	ctx := testContext(t)
	if _, err := other.Subscribe(ctx, "room", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}

	slowDone := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.RPC(ctx, "slow", nil)
		slowDone <- err
	}()
	// While c waits for the slow backend, the other client is served.
	for i := range 5 {
		if _, err := other.Publish(ctx, "room", map[string]int{"n": i}); err != nil {
			t.Fatalf("other client's publish during the slow call: %v", err)
		}
	}
	other.waitPubs(t, "room", 5)
	err := <-slowDone
	elapsed := time.Since(start)
	wantError(t, "slow backend", err, protocol.ErrBackendUnavailable)
	if err == nil || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Errorf("slow backend: %v, want the timeout in the message", err)
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("slow backend answered after %v, want about %v", elapsed, timeout)
	}

	for _, tc := range []struct{ method, want string }{
		{"garbage", "not a JSON object"},
		{"500", "HTTP 500"},
		{"badresult", "not valid"},
	} {
		_, err := c.RPC(ctx, tc.method, nil)
		wantError(t, tc.method, err, protocol.ErrBackendUnavailable)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q in the message", tc.method, err, tc.want)
		}
	}

	// Down: a server whose backend address refuses connections.
	down := startBackend(t, nil)
	down.Close()
	baseDown, _ := startProxied(t, down, timeout, nil, "/rpc")
	cd := dial(t, baseDown, "d")
	_, err = cd.RPC(ctx, "x", nil)
	wantError(t, "backend down", err, protocol.ErrBackendUnavailable)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("backend down: %v, want unreachable", err)
	}

	// The client is still connected and served after all that.
	if err := c.Ping(ctx); err != nil {
		t.Errorf("ping after the failures: %v", err)
	}
	m := scrape(t, httpBase)
	for r, want := range map[string]float64{"timeout": 1, "bad_reply": 2, "status": 1} {
		series := fmt.Sprintf(`redcast_proxy_calls_total{kind="rpc",result="%s"}`, r)
		if m[series] != want {
			t.Errorf("metrics: %s = %v, want %v", series, m[series], want)
		}
	}
}

// TestProxyConnectBackendDown: a connect the backend cannot answer is
// refused with 117, and the connection stays open for a retry.
func TestProxyConnectBackendDown(t *testing.T) {
	b := startBackend(t, func(string, centrifugoRequest, http.Header) (int, string) { return 502, "" })
	base, _ := startProxied(t, b, time.Second, nil, "/connect")
	_, err := dialWith(t, base, nil)
	wantError(t, "connect with the backend answering 502", err, protocol.ErrBackendUnavailable)
}

func TestProxyRefresh(t *testing.T) {
	var mu sync.Mutex
	expired := false
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case path == "/connect":
			return 200, fmt.Sprintf(`{"result": {"user": "dave", "expire_at": %d}}`, time.Now().Add(2*time.Second).Unix())
		case path == "/refresh" && expired:
			return 200, `{"result": {"expired": true}}`
		case path == "/refresh":
			return 200, fmt.Sprintf(`{"result": {"expire_at": %d}}`, time.Now().Add(2*time.Second).Unix())
		}
		return 200, `{"result": {}}`
	})
	base, _ := startProxied(t, b, time.Second, nil, "/connect", "/refresh")
	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two refreshes", func() bool { return len(b.callsTo("/refresh")) >= 2 })
	if err := c.Ping(testContext(t)); err != nil {
		t.Fatalf("ping of a refreshed connection: %v", err)
	}
	if r := b.callsTo("/refresh")[0].req; r.User == nil || *r.User != "dave" {
		t.Errorf("refresh request %+v: want user dave", r)
	}
	mu.Lock()
	expired = true
	mu.Unlock()
	select {
	case <-c.Done():
		wantDisconnect(t, "refresh answered expired", c.Err(), protocol.DisconnectTokenExpired.Code)
	case <-testContext(t).Done():
		t.Fatal("the connection outlived an expired refresh")
	}
}

// TestProxyEventStream: an event stream without a token is named by the
// connect proxy, with the headers of its request, and its channels are
// allowed or refused by the subscribe proxy (HTTP 403 with the backend's
// error).
func TestProxyEventStream(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		switch {
		case path == "/connect" && h.Get("Cookie") == "session=ok":
			return 200, `{"result": {"user": "erin"}}`
		case path == "/connect" && h.Get("Cookie") == "session=banned":
			return 200, `{"disconnect": {"code": 4501, "reason": "log in first"}}`
		case path == "/connect":
			return 200, `{"error": {"code": 1401, "message": "who are you?"}}`
		case path == "/subscribe" && req.Channel == "closed":
			return 200, `{"error": {"code": 1403, "message": "not for you"}}`
		}
		return 200, `{"result": {}}`
	})
	_, httpBase := startProxied(t, b, time.Second, nil, "/connect", "/subscribe")
	get := func(channel, cookie string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, httpBase+"/connection/sse?channel="+channel, nil)
		req.Close = true
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode == http.StatusOK {
			return resp, ""
		}
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, body := get("open", ""); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":1401`) {
		t.Errorf("stream without the cookie: %d %s, want the backend's 1401", resp.StatusCode, body)
	}
	if resp, body := get("open", "session=banned"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `"code":4501`) || !strings.Contains(body, "log in first") {
		t.Errorf("stream the backend closes: %d %s, want 403 with its code and reason", resp.StatusCode, body)
	}
	if resp, body := get("closed", "session=ok"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not for you") {
		t.Errorf("stream of a refused channel: %d %s, want the backend's refusal", resp.StatusCode, body)
	}
	resp, _ := get("open", "session=ok")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream with the cookie: %d", resp.StatusCode)
	}
	waitFor(t, "the subscribe call of the stream", func() bool {
		for _, c := range b.callsTo("/subscribe") {
			if c.req.Channel == "open" && c.req.Transport == "sse" && c.req.User != nil && *c.req.User == "erin" {
				return true
			}
		}
		return false
	})
}

// TestProxyDisconnectsAndAnonymous: a backend's disconnect in answer to a
// publish closes the connection with its code; a backend that names no
// user makes an anonymous client, which a server without anonymous access
// refuses.
func TestProxyDisconnectsAndAnonymous(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		switch path {
		case "/connect":
			return 200, `{"result": {"info": {"name": "guest"}}}`
		case "/publish":
			return 200, `{"disconnect": {"code": 4000, "reason": "come back later"}}`
		}
		return 200, `{"result": {}}`
	})
	base, _ := startProxied(t, b, time.Second, nil, "/connect", "/publish")
	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatalf("anonymous connect through the backend: %v", err)
	}
	if _, err := c.Subscribe(testContext(t), "chat:a", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Publish(testContext(t), "chat:a", map[string]string{"text": "x"})
	select {
	case <-c.Done():
		wantDisconnect(t, "publish answered with a disconnect", c.Err(), 4000)
		if d, ok := errors.AsType[protocol.Disconnect](c.Err()); !ok || !d.Reconnect() {
			t.Errorf("disconnect %v: 4000 should advise to reconnect", c.Err())
		}
	case <-testContext(t).Done():
		t.Fatal("the connection outlived the backend's disconnect")
	}

	px := proxy.New(proxy.Config{})
	t.Cleanup(px.CloseIdleConnections)
	addr, _ := testserver.Start(t, server.Config{Node: redcast.Config{RequireToken: true,
		Proxy: redcast.ProxyConfig{Backend: px, ConnectURL: b.URL + "/connect"}}})
	_, err = dialWith(t, "ws://"+addr, nil)
	wantError(t, "anonymous client of the backend on a server that requires users", err, protocol.ErrUnauthorized)
}

// TestProxyConnectOfABlockedUser: a user the connect proxy names is
// subject to blocking like a user of a token: its connection is closed
// when it is blocked, and its next connect refused until it is unblocked.
func TestProxyConnectOfABlockedUser(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		return 200, `{"result": {"user": "mo"}}`
	})
	px := proxy.New(proxy.Config{Timeout: time.Second})
	t.Cleanup(px.CloseIdleConnections)
	addr, _ := testserver.Start(t, server.Config{APIKey: testAPIKey,
		Node: redcast.Config{Proxy: redcast.ProxyConfig{Backend: px, ConnectURL: b.URL + "/connect"}}})
	base, httpBase := "ws://"+addr, "http://"+addr

	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	apiOK(t, httpBase, "block_user", map[string]string{"user": "mo"}, nil)
	waitClosedWithin(t, "the blocked user's proxied connection", c, start, protocol.DisconnectUserBlocked.Code)
	_, err = dialWith(t, base, nil)
	wantError(t, "a blocked user's proxied connect", err, protocol.ErrUnauthorized)
	apiOK(t, httpBase, "unblock_user", map[string]string{"user": "mo"}, nil)
	if _, err := dialWith(t, base, nil); err != nil {
		t.Fatalf("connect after unblock: %v", err)
	}
}

// TestProxyRefreshIntoThePast: a refresh answered with an expiry already
// past ends the connection with 3006 at once, instead of asking the
// backend again and again.
func TestProxyRefreshIntoThePast(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		if path == "/connect" {
			return 200, fmt.Sprintf(`{"result": {"user": "dave", "expire_at": %d}}`, time.Now().Add(2*time.Second).Unix())
		}
		return 200, fmt.Sprintf(`{"result": {"expire_at": %d}}`, time.Now().Add(-time.Minute).Unix())
	})
	base, _ := startProxied(t, b, time.Second, nil, "/connect", "/refresh")
	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		wantDisconnect(t, "refresh answered with a past expiry", c.Err(), protocol.DisconnectTokenExpired.Code)
	case <-testContext(t).Done():
		t.Fatal("the connection outlived a refresh into the past")
	}
	if n := len(b.callsTo("/refresh")); n != 1 {
		t.Errorf("the backend was asked to refresh %d times, want 1", n)
	}
}

// TestProxyRPCRateLimited: rpc counts against the connection's publish
// rate: past it the client gets 116 and the backend is not called.
func TestProxyRPCRateLimited(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		return 200, `{"result": {}}`
	})
	px := proxy.New(proxy.Config{Timeout: time.Second})
	t.Cleanup(px.CloseIdleConnections)
	addr, _ := testserver.Start(t, server.Config{Node: redcast.Config{PublishRate: 0.001, PublishBurst: 2,
		Proxy: redcast.ProxyConfig{Backend: px, RPCURL: b.URL + "/rpc"}}})
	c, err := dialWith(t, "ws://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.RPC(testContext(t), "m", nil); err != nil {
			t.Fatalf("rpc %d within the burst: %v", i+1, err)
		}
	}
	_, err = c.RPC(testContext(t), "m", nil)
	wantError(t, "rpc past the rate", err, protocol.ErrTooManyRequests)
	if n := len(b.callsTo("/rpc")); n != 2 {
		t.Errorf("the backend got %d rpc calls, want 2", n)
	}
}

// TestProxyConnectBounds: a connect proxy's answer is bounded like what a
// client may send: more channels than a connection holds, meta over 4 KiB
// or data over the data limit is an invalid reply, 117.
func TestProxyConnectBounds(t *testing.T) {
	many := make([]string, 129)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("room%d", i))
	}
	answers := map[string]string{
		"channels": `{"result": {"user": "u", "channels": [` + strings.Join(many, ",") + `]}}`,
		"meta":     `{"result": {"user": "u", "meta": {"x": "` + strings.Repeat("m", 4<<10) + `"}}}`,
		"data":     `{"result": {"user": "u", "data": {"x": "` + strings.Repeat("d", 16<<10) + `"}}}`,
	}
	var mu sync.Mutex
	var answer string
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		return 200, answer
	})
	base, _ := startProxied(t, b, time.Second, nil, "/connect")
	for what, a := range answers {
		mu.Lock()
		answer = a
		mu.Unlock()
		_, err := dialWith(t, base, nil)
		wantError(t, "a connect proxy giving too much "+what, err, protocol.ErrBackendUnavailable)
	}
}

// TestProxySubscribeCheapChecksFirst: a subscribe that fails on its own
// (history out of range, already subscribed) costs no backend call.
func TestProxySubscribeCheapChecksFirst(t *testing.T) {
	b := startBackend(t, func(path string, req centrifugoRequest, h http.Header) (int, string) {
		return 200, `{"result": {}}`
	})
	base, _ := startProxied(t, b, time.Second, nil, "/subscribe")
	c, err := dialWith(t, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(testContext(t), "news", client.SubscribeOptions{History: redcast.MaxHistoryLimit + 1})
	wantError(t, "history out of range", err, protocol.ErrBadRequest)
	if _, err := c.Subscribe(testContext(t), "news", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(testContext(t), "news", client.SubscribeOptions{})
	wantError(t, "subscribed twice", err, protocol.ErrAlreadySubscribed)
	if n := len(b.callsTo("/subscribe")); n != 1 {
		t.Errorf("the backend was asked %d times, want once (for the one subscribe that could succeed)", n)
	}
}
