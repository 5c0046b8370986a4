package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

const testAPIKey = "test-api-key-0123456789"

// startAPIServer starts a server with cfg and the API on (key testAPIKey)
// and returns its WebSocket and HTTP base URLs.
func startAPIServer(t *testing.T, cfg redcast.Config) (wsBase, httpBase string) {
	t.Helper()
	addr, _ := testserver.Start(t, server.Config{Node: cfg, APIKey: testAPIKey})
	return "ws://" + addr, "http://" + addr
}

// apiResponse is an API answer: its status and decoded body.
type apiResponse struct {
	Status int             `json:"-"`
	Raw    []byte          `json:"-"`
	Result json.RawMessage `json:"result"`
	Error  *protocol.Error `json:"error"`
}

// callAPI POSTs body to httpBase/api/method with the Authorization header
// auth (none when empty).
func callAPI(t *testing.T, httpBase, method, authz string, body any) apiResponse {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, httpBase+"/api/"+method, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("api %s: %v", method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := apiResponse{Status: resp.StatusCode, Raw: raw}
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("api %s: body %q: %v", method, raw, err)
		}
	}
	return out
}

// apiOK calls the API with the right key, fails unless it answers 200, and
// decodes the result into res (when not nil).
func apiOK(t *testing.T, httpBase, method string, body, res any) {
	t.Helper()
	r := callAPI(t, httpBase, method, "apikey "+testAPIKey, body)
	if r.Status != http.StatusOK || r.Error != nil {
		t.Fatalf("api %s: status %d, body %s", method, r.Status, r.Raw)
	}
	if res != nil {
		if err := json.Unmarshal(r.Result, res); err != nil {
			t.Fatalf("api %s: result %s: %v", method, r.Result, err)
		}
	}
}

// TestAPIOffWithoutKey: a server without an API key has no API at all.
func TestAPIOffWithoutKey(t *testing.T) {
	addr, _ := testserver.Start(t, server.Config{})
	for _, authz := range []string{"", "apikey ", "apikey anything"} {
		r := callAPI(t, "http://"+addr, "publish", authz, `{"channel":"chat:x","data":1}`)
		if r.Status != http.StatusNotFound {
			t.Errorf("authorization %q: status %d, want 404", authz, r.Status)
		}
	}
}

// TestAPIKeyRefused: a missing, wrong or malformed key gets 401 and the
// request is not carried out.
func TestAPIKeyRefused(t *testing.T) {
	_, httpBase := startAPIServer(t, redcast.Config{})
	for _, authz := range []string{
		"", "apikey", "apikey ", "apikey wrong", "apikey " + testAPIKey + "x", "Bearer " + testAPIKey,
		"apikey " + testAPIKey[:len(testAPIKey)-1], testAPIKey,
	} {
		for _, method := range []string{"publish", "nope"} {
			r := callAPI(t, httpBase, method, authz, `{"channel":"chat:x","data":1}`)
			if r.Status != http.StatusUnauthorized || r.Error == nil || r.Error.Code != protocol.ErrUnauthorized.Code || r.Result != nil {
				t.Errorf("%s with authorization %q: status %d, body %s; want 401 with error 114", method, authz, r.Status, r.Raw)
			}
		}
	}
	var h protocol.HistoryResult
	apiOK(t, httpBase, "history", map[string]any{"channel": "chat:x"}, &h)
	if h.Offset != 0 || len(h.Publications) != 0 {
		t.Fatalf("a refused publish was carried out: history %+v", h)
	}
	// The scheme is case-insensitive, as HTTP auth schemes are.
	apiOK(t, httpBase, "history", `{"channel":"chat:x"}`, nil)
	if r := callAPI(t, httpBase, "history", "ApiKey "+testAPIKey, `{"channel":"chat:x"}`); r.Status != http.StatusOK {
		t.Errorf("scheme ApiKey: status %d", r.Status)
	}
}

// TestAPIPublishBroadcastHistory: publishes from the API reach WebSocket
// subscribers, get offsets, and show in history; broadcast answers per
// channel.
func TestAPIPublishBroadcastHistory(t *testing.T) {
	wsBase, httpBase := startAPIServer(t, redcast.Config{})
	ctx := testContext(t)
	sub := dial(t, wsBase, "sub")
	for _, ch := range []string{"chat:a", "chat:b"} {
		if _, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var pos protocol.StreamPosition
	apiOK(t, httpBase, "publish", map[string]any{"channel": "chat:a", "data": map[string]string{"text": "from backend"}}, &pos)
	if pos.Offset != 1 || pos.Epoch == "" {
		t.Fatalf("publish result %+v, want offset 1 and an epoch", pos)
	}
	if got := sub.waitPubs(t, "chat:a", 1); string(got[0].Data) != `{"text":"from backend"}` || got[0].From != nil {
		t.Fatalf("subscriber got %+v, want the data without a publisher", got[0])
	}

	var bres struct {
		Responses []struct {
			Channel string                   `json:"channel"`
			Result  *protocol.StreamPosition `json:"result"`
			Error   *protocol.Error          `json:"error"`
		} `json:"responses"`
	}
	apiOK(t, httpBase, "broadcast", map[string]any{"channels": []string{"chat:a", "chat:b", "bad channel", "nons:x"}, "data": 42}, &bres)
	if len(bres.Responses) != 4 {
		t.Fatalf("broadcast responses %+v", bres)
	}
	for i, want := range []struct {
		ch     string
		offset uint64
		code   uint32
	}{{"chat:a", 2, 0}, {"chat:b", 1, 0}, {"bad channel", 0, protocol.ErrInvalidChannel.Code}, {"nons:x", 0, protocol.ErrUnknownNamespace.Code}} {
		r := bres.Responses[i]
		switch {
		case r.Channel != want.ch:
			t.Errorf("response %d is for %q, want %q", i, r.Channel, want.ch)
		case want.code == 0 && (r.Result == nil || r.Result.Offset != want.offset || r.Error != nil):
			t.Errorf("response %d = %+v, want offset %d", i, r, want.offset)
		case want.code != 0 && (r.Error == nil || r.Error.Code != want.code || r.Result != nil):
			t.Errorf("response %d = %+v, want error %d", i, r, want.code)
		}
	}
	sub.waitPubs(t, "chat:b", 1)
	if got := sub.waitPubs(t, "chat:a", 2); string(got[1].Data) != "42" {
		t.Fatalf("chat:a got %+v", got)
	}

	var h protocol.HistoryResult
	apiOK(t, httpBase, "history", map[string]any{"channel": "chat:a", "limit": 1}, &h)
	if h.Offset != 2 || len(h.Publications) != 1 || string(h.Publications[0].Data) != "42" {
		t.Fatalf("history limit 1 = %+v", h)
	}
	apiOK(t, httpBase, "history", map[string]any{"channel": "chat:a", "since": pos}, &h)
	if len(h.Publications) != 1 || h.Publications[0].Offset != 2 {
		t.Fatalf("history since %+v = %+v", pos, h)
	}
	r := callAPI(t, httpBase, "history", "apikey "+testAPIKey, map[string]any{"channel": "chat:a", "since": protocol.StreamPosition{Offset: 1, Epoch: "other"}})
	if r.Status != http.StatusBadRequest || r.Error == nil || r.Error.Code != protocol.ErrPositionExpired.Code {
		t.Fatalf("history from another epoch: %d %s, want 400 with error 113", r.Status, r.Raw)
	}
}

// TestAPIPresenceAndChannels: presence lists subscribers; channels lists
// the channels with subscribers, filtered by prefix, never the internal one.
func TestAPIPresenceAndChannels(t *testing.T) {
	wsBase, httpBase := startAPIServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"news": {}})})
	ctx := testContext(t)
	c := dial(t, wsBase, "ann")
	for _, ch := range []string{"chat:p", "news:1", "lobby"} {
		if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var pres protocol.PresenceResult
	apiOK(t, httpBase, "presence", map[string]string{"channel": "chat:p"}, &pres)
	if len(pres.Clients) != 1 || pres.Clients[0].Client != c.ID() {
		t.Fatalf("presence = %+v, want the one client", pres)
	}
	r := callAPI(t, httpBase, "presence", "apikey "+testAPIKey, `{"channel":"news:1"}`)
	if r.Status != http.StatusBadRequest || r.Error == nil || r.Error.Code != protocol.ErrNotAvailable.Code {
		t.Fatalf("presence where it is off: %d %s, want 400 with error 111", r.Status, r.Raw)
	}
	var chans struct{ Channels []string }
	apiOK(t, httpBase, "channels", `{}`, &chans)
	if want := []string{"chat:p", "lobby", "news:1"}; !slices.Equal(chans.Channels, want) {
		t.Fatalf("channels = %v, want %v", chans.Channels, want)
	}
	apiOK(t, httpBase, "channels", `{"prefix":"news:"}`, &chans)
	if want := []string{"news:1"}; !slices.Equal(chans.Channels, want) {
		t.Fatalf("channels with prefix news: = %v, want %v", chans.Channels, want)
	}
	if err := c.Unsubscribe(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	apiOK(t, httpBase, "channels", ``, &chans)
	if want := []string{"chat:p", "news:1"}; !slices.Equal(chans.Channels, want) {
		t.Fatalf("channels after unsubscribe = %v, want %v", chans.Channels, want)
	}
}

// TestAPIBadRequests: malformed bodies, unknown fields, invalid values,
// oversized bodies and wrong methods get clear errors.
func TestAPIBadRequests(t *testing.T) {
	_, httpBase := startAPIServer(t, redcast.Config{MaxDataSize: 100})
	for _, tc := range []struct {
		method, body string
		status       int
		code         uint32
	}{
		{"publish", `{"channel":"chat:x"`, 400, protocol.ErrBadRequest.Code},
		{"publish", `{"channel":"chat:x","data":1,"extra":2}`, 400, protocol.ErrBadRequest.Code},
		{"publish", `{"channel":"chat:x","data":1} {}`, 400, protocol.ErrBadRequest.Code},
		{"publish", `[1]`, 400, protocol.ErrBadRequest.Code},
		{"publish", `{"channel":"chat:x"}`, 400, protocol.ErrBadRequest.Code},
		{"publish", `{"channel":"chat:x","data":"` + strings.Repeat("x", 200) + `"}`, 400, protocol.ErrDataTooLarge.Code},
		{"publish", `{"channel":"","data":1}`, 400, protocol.ErrInvalidChannel.Code},
		{"publish", `{"channel":"$redcast.control","data":1}`, 400, protocol.ErrInvalidChannel.Code},
		{"publish", `{"channel":"unknown:x","data":1}`, 400, protocol.ErrUnknownNamespace.Code},
		{"publish", `{"channel":"chat:x","data":` + strings.Repeat(" ", 2<<20) + `1}`, 413, protocol.ErrDataTooLarge.Code},
		{"broadcast", `{"channels":[],"data":1}`, 400, protocol.ErrBadRequest.Code},
		{"broadcast", `{"channels":[` + strings.Repeat(`"chat:x",`, 1000) + `"chat:y"],"data":1}`, 400, protocol.ErrLimitExceeded.Code},
		{"history", `{"channel":"chat:x","limit":-1}`, 400, protocol.ErrBadRequest.Code},
		{"history", `{"channel":"chat:x","limit":1001}`, 400, protocol.ErrBadRequest.Code},
		{"disconnect", `{}`, 400, protocol.ErrBadRequest.Code},
		{"unsubscribe", `{"user":"u","channel":"no spaces"}`, 400, protocol.ErrInvalidChannel.Code},
	} {
		r := callAPI(t, httpBase, tc.method, "apikey "+testAPIKey, tc.body)
		if r.Status != tc.status || r.Error == nil || r.Error.Code != tc.code || r.Error.Message == "" {
			t.Errorf("%s %.60q: %d %.200s; want %d with error %d", tc.method, tc.body, r.Status, r.Raw, tc.status, tc.code)
		}
	}
	req, _ := http.NewRequestWithContext(testContext(t), http.MethodGet, httpBase+"/api/publish", nil)
	req.Header.Set("Authorization", "apikey "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/publish: %d, want 405", resp.StatusCode)
	}
	if r := callAPI(t, httpBase, "nope", "apikey "+testAPIKey, `{}`); r.Status != http.StatusNotFound {
		t.Errorf("unknown endpoint: %d, want 404", r.Status)
	}
}

// TestAPIDisconnectAndUnsubscribeUser: the API disconnects every
// connection of a user (with or without reconnect advice) and unsubscribes
// a user from a channel, leaving other users alone.
func TestAPIDisconnectAndUnsubscribeUser(t *testing.T) {
	cfg := authConfig(t, false)
	wsBase, httpBase := startAPIServer(t, cfg)
	ctx := testContext(t)
	token := func(user string) string { return mint(t, auth.MintOptions{User: user}) }
	alice1, err := dialToken(t, wsBase, token("alice"))
	if err != nil {
		t.Fatal(err)
	}
	alice2, err := dialToken(t, wsBase, token("alice"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := dialToken(t, wsBase, token("bob"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*conn{alice1, alice2, bob} {
		for _, ch := range []string{"chat:u", "chat:v"} {
			if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	apiOK(t, httpBase, "unsubscribe", map[string]string{"user": "alice", "channel": "chat:u"}, nil)
	for _, c := range []*conn{alice1, alice2} {
		waitFor(t, "unsubscribe push", func() bool { return len(c.ofType(protocol.PushUnsubscribe, "chat:u")) == 1 })
	}
	apiOK(t, httpBase, "publish", map[string]any{"channel": "chat:u", "data": 1}, nil)
	apiOK(t, httpBase, "publish", map[string]any{"channel": "chat:v", "data": 2}, nil)
	bob.waitPubs(t, "chat:u", 1)
	for _, c := range []*conn{alice1, alice2} {
		c.waitPubs(t, "chat:v", 1)
		if got := c.pubs("chat:u"); len(got) != 0 {
			t.Fatalf("alice got %+v on chat:u after being unsubscribed", got)
		}
	}
	var pres protocol.PresenceResult
	apiOK(t, httpBase, "presence", map[string]string{"channel": "chat:u"}, &pres)
	if len(pres.Clients) != 1 || pres.Clients[0].User != "bob" {
		t.Fatalf("presence of chat:u = %+v, want bob only", pres)
	}

	apiOK(t, httpBase, "disconnect", map[string]any{"user": "alice"}, nil)
	for _, c := range []*conn{alice1, alice2} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("alice was not disconnected")
		}
		wantDisconnect(t, "alice", c.Err(), protocol.DisconnectForced.Code)
	}
	if err := bob.Ping(ctx); err != nil {
		t.Fatalf("bob was hurt: %v", err)
	}
	apiOK(t, httpBase, "disconnect", map[string]any{"user": "bob", "reconnect": true}, nil)
	<-bob.Done()
	wantDisconnect(t, "bob", bob.Err(), protocol.DisconnectForcedReconnect.Code)
}

// TestAPIAcrossRedisNodes: on Redis, the API of any node publishes to
// subscribers of every node, lists the channels of every node, and
// disconnects or unsubscribes a user wherever the user is connected.
func TestAPIAcrossRedisNodes(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	cfg := authConfig(t, false)
	cfg.NodeInfoInterval = 100 * time.Millisecond
	nodes := startRedisNodesWith(t, rs.URL(), 2, server.Config{Node: cfg, APIKey: testAPIKey})
	ctx := testContext(t)
	alice, err := dialToken(t, nodes[0].base, mint(t, auth.MintOptions{User: "alice"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"chat:r1", "chat:r2"} {
		if _, err := alice.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	api := nodes[1].http
	apiOK(t, api, "publish", map[string]any{"channel": "chat:r1", "data": "hello"}, nil)
	alice.waitPubs(t, "chat:r1", 1)
	var chans struct{ Channels []string }
	apiOK(t, api, "channels", `{"prefix":"chat:"}`, &chans)
	if want := []string{"chat:r1", "chat:r2"}; !slices.Equal(chans.Channels, want) {
		t.Fatalf("channels seen from node 1 = %v, want %v", chans.Channels, want)
	}
	var info struct{ Nodes []redcast.NodeInfo }
	waitFor(t, "both nodes in /api/info", func() bool {
		apiOK(t, api, "info", ``, &info)
		return len(info.Nodes) == 2 && info.Nodes[0].Connections+info.Nodes[1].Connections == 1
	})
	if ids := []string{info.Nodes[0].ID, info.Nodes[1].ID}; !slices.Contains(ids, nodes[0].srv.Node().ID()) || !slices.Contains(ids, nodes[1].srv.Node().ID()) {
		t.Fatalf("/api/info nodes %+v, want nodes %s and %s", info.Nodes, nodes[0].srv.Node().ID(), nodes[1].srv.Node().ID())
	}
	apiOK(t, api, "unsubscribe", map[string]string{"user": "alice", "channel": "chat:r2"}, nil)
	waitFor(t, "unsubscribe push on node 0", func() bool { return len(alice.ofType(protocol.PushUnsubscribe, "chat:r2")) == 1 })
	apiOK(t, api, "disconnect", map[string]any{"user": "alice"}, nil)
	select {
	case <-alice.Done():
	case <-ctx.Done():
		t.Fatal("alice on node 0 was not disconnected through node 1")
	}
	wantDisconnect(t, "alice", alice.Err(), protocol.DisconnectForced.Code)
}

// TestAPIUnsubscribeSession: a client.Session learns of a server
// unsubscribe through OnUnsubscribed and does not subscribe again when it
// reconnects.
func TestAPIUnsubscribeSession(t *testing.T) {
	wsBase, httpBase := startAPIServer(t, authConfig(t, false))
	ctx := testContext(t)
	s, err := client.Connect(ctx, protocolURL(wsBase), client.SessionOptions{Conn: client.Options{Token: mint(t, auth.MintOptions{User: "carol"})}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unsubscribed := make(chan client.UnsubscribedEvent, 1)
	if _, err := s.Subscribe(ctx, "chat:sess", client.SubscribeOptions{}, client.Handlers{
		OnUnsubscribed: func(e client.UnsubscribedEvent) { unsubscribed <- e },
	}); err != nil {
		t.Fatal(err)
	}
	apiOK(t, httpBase, "unsubscribe", map[string]string{"user": "carol", "channel": "chat:sess"}, nil)
	select {
	case e := <-unsubscribed:
		if e.Channel != "chat:sess" || !errors.Is(e.Err, client.ErrUnsubscribed) {
			t.Fatalf("OnUnsubscribed(%+v), want chat:sess with ErrUnsubscribed", e)
		}
	case <-ctx.Done():
		t.Fatal("no OnUnsubscribed")
	}
	// Told to reconnect, the session subscribes again to chat:keep (in
	// the same frame as it would to chat:sess) but not to chat:sess.
	if _, err := s.Subscribe(ctx, "chat:keep", client.SubscribeOptions{}, client.Handlers{}); err != nil {
		t.Fatal(err)
	}
	var pres protocol.PresenceResult
	waitFor(t, "carol in chat:keep", func() bool {
		apiOK(t, httpBase, "presence", map[string]string{"channel": "chat:keep"}, &pres)
		return len(pres.Clients) == 1
	})
	before := pres.Clients[0].Client
	apiOK(t, httpBase, "disconnect", map[string]any{"user": "carol", "reconnect": true}, nil)
	waitFor(t, "carol back in chat:keep", func() bool {
		apiOK(t, httpBase, "presence", map[string]string{"channel": "chat:keep"}, &pres)
		return len(pres.Clients) == 1 && pres.Clients[0].Client != before
	})
	apiOK(t, httpBase, "presence", map[string]string{"channel": "chat:sess"}, &pres)
	if len(pres.Clients) != 0 {
		t.Fatalf("presence of chat:sess after reconnect = %+v, want nobody", pres)
	}
}
