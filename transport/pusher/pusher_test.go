package pusher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/server"
)

// authFor returns the auth of a private subscribe to testApp's channel,
// signed with secret.
func authFor(secret, socketID, channel string) string {
	return pushertest.ChannelAuth(testApp.Key, secret, socketID, channel)
}

func TestConnectionEstablished(t *testing.T) {
	addr, _ := start(t, server.Config{})
	c := dial(t, addr, testApp.Key, "protocol=7")
	m := c.Read()
	if m.Event != "pusher:connection_established" {
		t.Fatalf("got %+v", m)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(m.DataString(t)), &d); err != nil {
		t.Fatal(err)
	}
	if id, _ := d["socket_id"].(string); !regexp.MustCompile(`^\d+\.\d+$`).MatchString(id) {
		t.Errorf("socket_id %v, want digits.digits", d["socket_id"])
	}
	if d["activity_timeout"] != float64(120) {
		t.Errorf("activity_timeout %v, want 120", d["activity_timeout"])
	}
	c.Send(map[string]any{"event": "pusher:ping", "data": map[string]any{}})
	if m := c.Read(); m.Event != "pusher:pong" {
		t.Fatalf("got %+v, want pusher:pong", m)
	}
}

// A connection Pusher would refuse is refused after the upgrade with
// pusher:error and a close frame of the same code, in 4000-4099 (clients
// do not retry).
func TestRefused(t *testing.T) {
	addr, _ := start(t, server.Config{})
	for _, tc := range []struct {
		name, key, query string
		code             int
	}{
		{"unknown key", "nope", "protocol=7", 4001},
		{"long unknown key", strings.Repeat("k", 300), "protocol=7", 4001},
		{"no protocol", testApp.Key, "client=js", 4008},
		{"bad version", testApp.Key, "protocol=seven", 4006},
		{"old protocol", testApp.Key, "protocol=3", 4007},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr, tc.key, tc.query)
			code, _ := errorData(t, c.Read())
			if code == nil || *code != tc.code {
				t.Errorf("pusher:error code %v, want %d", code, tc.code)
			}
			if got, _ := c.ReadClose(); got != tc.code {
				t.Errorf("close code %d, want %d", got, tc.code)
			}
		})
	}
}

// Without apps, every key is unknown.
func TestNoApps(t *testing.T) {
	addr, _ := testserverStart(t)
	c := dial(t, addr, testApp.Key, "protocol=7")
	if code, _ := errorData(t, c.Read()); code == nil || *code != 4001 {
		t.Fatalf("code %v, want 4001", code)
	}
}

// Events published on the redcast side reach Pusher clients: an envelope
// ({"pusher_event": ...}) as its event, anything else (an "event" member
// too) as redcast:publication with the data as a JSON string. Unsubscribed, a client gets nothing more of the channel.
func TestEventMapping(t *testing.T) {
	addr, srv := start(t, server.Config{})
	c, _ := connect(t, addr)
	for _, ch := range []string{"news", "other"} {
		if m := c.Subscribe(ch, ""); m.Event != "pusher_internal:subscription_succeeded" || m.Channel != ch {
			t.Fatalf("subscribe %s: %+v", ch, m)
		}
	}
	ctx := context.Background()
	publish := func(ch, data string) {
		t.Helper()
		if _, err := srv.Node().Publish(ctx, "pusher:"+ch, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish("news", `{"pusher_event":"order-shipped","data":"{\"id\":42}"}`)
	publish("news", `{"text":"hi"}`)
	m := c.Read()
	if m.Event != "order-shipped" || m.Channel != "news" || m.DataString(t) != `{"id":42}` {
		t.Errorf("envelope arrived as %+v", m)
	}
	m = c.Read()
	if m.Event != "redcast:publication" || m.DataString(t) != `{"text":"hi"}` {
		t.Errorf("plain publication arrived as %+v", m)
	}
	// A publication that happens to have an event is not an envelope.
	publish("news", `{"event":"looks-like-one","data":"x"}`)
	if m := c.Read(); m.Event != "redcast:publication" || m.DataString(t) != `{"event":"looks-like-one","data":"x"}` {
		t.Errorf("a publication with an event member arrived as %+v", m)
	}
	c.Send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": "news"}})
	// Unsubscribing has no answer: the pong to a ping sent after it says
	// it was handled.
	c.Send(map[string]any{"event": "pusher:ping", "data": map[string]any{}})
	if m := c.Read(); m.Event != "pusher:pong" {
		t.Fatalf("got %+v, want pusher:pong", m)
	}
	publish("news", `{"pusher_event":"late"}`)
	publish("other", `{"pusher_event":"after"}`)
	if m := c.Read(); m.Event != "after" || m.Channel != "other" {
		t.Errorf("after unsubscribing got %+v, want the event of the other channel", m)
	}
}

// Bad input gets Pusher's errors, keeps the connection, and affects no
// other client.
func TestBadInput(t *testing.T) {
	cfg := server.Config{}
	// Ten client events, and no more for the length of the test.
	cfg.Pusher.ClientEventRate, cfg.Pusher.ClientEventBurst = 0.01, 10
	addr, srv := start(t, cfg)
	good, goodID := connect(t, addr)
	if m := good.Subscribe("private-chat", authFor(testApp.Secret, goodID, "private-chat")); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("good subscribe: %+v", m)
	}
	bad, badID := connect(t, addr)

	expectError := func(wantCode int, wantMsg string) {
		t.Helper()
		code, msg := errorData(t, bad.Read())
		if wantCode == 0 && code != nil || wantCode != 0 && (code == nil || *code != wantCode) {
			t.Errorf("code %v, want %d (message %q)", code, wantCode, msg)
		}
		if !strings.Contains(msg, wantMsg) {
			t.Errorf("message %q, want it to contain %q", msg, wantMsg)
		}
	}
	bad.SendRaw([]byte(`{not json`))
	expectError(0, "")
	bad.SendRaw([]byte(`{"event":"pusher:subscribe","data":{"channel":"semi;colon"}}`))
	expectError(0, "channel name")

	for _, auth := range []string{
		"", // none
		authFor("wrong-secret", badID, "private-chat"),                                       // wrong secret
		authFor(testApp.Secret, goodID, "private-chat"),                                      // another socket's
		"other-key:" + strings.Split(authFor(testApp.Secret, badID, "private-chat"), ":")[1], // wrong key
	} {
		m := bad.Subscribe("private-chat", auth)
		if m.Event != "pusher:subscription_error" || m.Channel != "private-chat" {
			t.Fatalf("subscribe with auth %q: %+v, want pusher:subscription_error", auth, m)
		}
		var d struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(m.Data, &d); err != nil || d.Type != "AuthError" || d.Status != 401 {
			t.Errorf("subscription_error data %s", m.Data)
		}
	}

	if m := bad.Subscribe("news", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("subscribe news: %+v", m)
	}
	bad.Send(map[string]any{"event": "client-x", "channel": "news", "data": map[string]int{"a": 1}})
	expectError(0, "only supported on private and presence channels")
	bad.Send(map[string]any{"event": "client-x", "channel": "private-chat", "data": map[string]int{"a": 1}})
	expectError(0, "not subscribed")

	if m := bad.Subscribe("private-chat", authFor(testApp.Secret, badID, "private-chat")); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("subscribe private-chat: %+v", m)
	}
	bad.Send(map[string]any{"event": "client-big", "channel": "private-chat", "data": strings.Repeat("x", 11<<10)})
	expectError(0, "data larger than")
	// Over the rate (Pusher's is 10 a second) the eleventh is refused with
	// 4301; the good client hears the first ten only.
	for i := range 11 {
		bad.Send(map[string]any{"event": "client-n", "channel": "private-chat", "data": map[string]int{"n": i}})
	}
	expectError(4301, "rate limit")
	for i := range 10 {
		m := good.Read()
		var d struct{ N int }
		if err := json.Unmarshal(m.Data, &d); err != nil || m.Event != "client-n" || d.N != i {
			t.Fatalf("good client got %+v, want client-n %d", m, i)
		}
	}

	// Both still work.
	if _, err := srv.Node().Publish(context.Background(), "pusher:private-chat", []byte(`{"pusher_event":"still-here"}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{good, bad} {
		if m := c.Read(); m.Event != "still-here" {
			t.Errorf("got %+v, want still-here", m)
		}
	}
}

// A cache channel sends its last event right after the subscribe reply, or
// pusher:cache_miss when it has none; live events follow without a repeat.
func TestCacheChannel(t *testing.T) {
	addr, srv := start(t, server.Config{})
	ctx := context.Background()
	for _, data := range []string{`{"pusher_event":"price","data":"1"}`, `{"pusher_event":"price","data":"2"}`} {
		if _, err := srv.Node().Publish(ctx, "pusher:cache-prices", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := connect(t, addr)
	if m := c.Subscribe("cache-prices", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("subscribe: %+v", m)
	}
	if m := c.Read(); m.Event != "price" || m.Channel != "cache-prices" || m.DataString(t) != "2" {
		t.Fatalf("after the reply %+v, want the last price", m)
	}
	if m := c.Subscribe("cache-empty", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("subscribe: %+v", m)
	}
	if m := c.Read(); m.Event != "pusher:cache_miss" || m.Channel != "cache-empty" {
		t.Fatalf("after the reply %+v, want pusher:cache_miss", m)
	}
	if _, err := srv.Node().Publish(ctx, "pusher:cache-prices", []byte(`{"pusher_event":"price","data":"3"}`)); err != nil {
		t.Fatal(err)
	}
	if m := c.Read(); m.Event != "price" || m.DataString(t) != "3" {
		t.Fatalf("live: %+v, want price 3", m)
	}
	// A plain channel sends nothing of its history.
	if m := c.Subscribe("prices", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("subscribe: %+v", m)
	}
	if _, err := srv.Node().Publish(ctx, "pusher:prices", []byte(`{"pusher_event":"live"}`)); err != nil {
		t.Fatal(err)
	}
	if m := c.Read(); m.Event != "live" {
		t.Fatalf("got %+v, want only the live event", m)
	}
}

// A server that shuts down tells Pusher clients to reconnect at once
// (4200), to another node.
func TestShutdownReconnects(t *testing.T) {
	addr, srv := start(t, server.Config{})
	c, _ := connect(t, addr)
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	if code, _ := errorData(t, c.Read()); code == nil || *code != 4200 {
		t.Errorf("pusher:error code %v, want 4200", code)
	}
	if code, _ := c.ReadClose(); code != 4200 {
		t.Errorf("close code %d, want 4200", code)
	}
	c.NC.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A server that shuts down with a delay closes its Pusher clients one by
// one, with 4200, at moments spread over the middle half of the delay, so
// that they do not all reconnect at the same instant, nor before load
// balancers saw the node go.
func TestShutdownSpreadsReconnects(t *testing.T) {
	const n, delay = 5, 800 * time.Millisecond
	addr, srv := start(t, server.Config{ShutdownDelay: delay})
	var clients []*client
	for range n {
		c, _ := connect(t, addr)
		clients = append(clients, c)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	type close struct {
		code int
		err  error
		at   time.Duration
	}
	closed := make(chan close, n)
	for _, c := range clients {
		go func() {
			code, _, err := c.WaitClose()
			closed <- close{code, err, time.Since(start)}
		}()
	}
	var first, last time.Duration
	for i := range n {
		c := <-closed
		if c.err != nil || c.code != 4200 {
			t.Fatalf("a client closed with %d (%v), want 4200", c.code, c.err)
		}
		if i == 0 {
			first = c.at
		}
		last = c.at
	}
	// The i-th of n closes at 1/4 of the delay and i/n of its half more:
	// the first at 200 ms, the last at 520 ms.
	if spread := last - first; first < delay/4 || spread < delay/2*(n-1)/n*3/4 || last > delay {
		t.Errorf("closes from %v to %v after the shutdown began, want spread from %v over %v", first, last, delay/4, delay/2)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Presence channels list members by user: a user with two connections is
// one member, member_added comes with its first connection and
// member_removed with its last, to the others only.
func TestPresence(t *testing.T) {
	addr, srv := start(t, server.Config{})
	const ch = "presence-room"
	alice, aliceID := connect(t, addr)
	if p := joinPresence(alice, aliceID, ch, "alice"); asJSON(t, p["ids"]) != `["alice"]` || p["count"] != float64(1) {
		t.Fatalf("alice alone: %v", p)
	}
	bob1, bob1ID := connect(t, addr)
	p := joinPresence(bob1, bob1ID, ch, "bob")
	if p["count"] != float64(2) || asJSON(t, p["hash"]) != `{"alice":{"name":"alice"},"bob":{"name":"bob"}}` {
		t.Fatalf("bob's view: %v", p)
	}
	m := alice.Read()
	if m.Event != "pusher_internal:member_added" || m.Channel != ch || m.DataString(t) != `{"user_id":"bob","user_info":{"name":"bob"}}` {
		t.Fatalf("alice got %+v, want bob added", m)
	}
	// bob's second connection is no new member; closing it is no leave.
	bob2, bob2ID := connect(t, addr)
	if p := joinPresence(bob2, bob2ID, ch, "bob"); p["count"] != float64(2) {
		t.Fatalf("bob's second view: %v", p)
	}
	bob2.NC.Close()
	marker := func() {
		t.Helper()
		if _, err := srv.Node().Publish(context.Background(), "pusher-presence:"+ch, []byte(`{"pusher_event":"marker"}`)); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, "bob's second connection to be gone", func() bool { return srv.Node().NumClients() == 2 })
	marker()
	if m := alice.Read(); m.Event != "marker" {
		t.Fatalf("alice got %+v, want nothing before the marker", m)
	}
	if m := bob1.Read(); m.Event != "marker" {
		t.Fatalf("bob got %+v, want nothing before the marker", m)
	}
	// A client event on a presence channel carries its user.
	bob1.Send(map[string]any{"event": "client-wave", "channel": ch, "data": map[string]int{"n": 1}})
	if m := alice.Read(); m.Event != "client-wave" || m.UserID != "bob" {
		t.Fatalf("alice got %+v, want bob's wave with his user_id", m)
	}
	bob1.Send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": ch}})
	if m := alice.Read(); m.Event != "pusher_internal:member_removed" || m.DataString(t) != `{"user_id":"bob"}` {
		t.Fatalf("alice got %+v, want bob removed", m)
	}
	// Another user on the same connection, or a forged channel_data, is refused.
	auth, _ := presenceAuth(bob1ID, "presence-other", "mallory", `{}`)
	bob1.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "presence-other", "auth": auth,
		"channel_data": `{"user_id":"mallory","user_info":{}}`}})
	if m := bob1.Read(); m.Event != "pusher:subscription_error" || !strings.Contains(string(m.Data), "already") {
		t.Errorf("a second user: %+v, want subscription_error", m)
	}
	auth, _ = presenceAuth(bob1ID, "presence-other", "bob", `{}`)
	bob1.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "presence-other", "auth": auth,
		"channel_data": `{"user_id":"alice","user_info":{}}`}})
	if m := bob1.Read(); m.Event != "pusher:subscription_error" || !strings.Contains(string(m.Data), "invalid signature") {
		t.Errorf("forged channel_data: %+v, want subscription_error", m)
	}
}

// A presence channel holds MaxPresenceMembers users; another connection of
// a member still gets in.
func TestPresenceMemberLimit(t *testing.T) {
	cfg := server.Config{}
	cfg.Pusher.MaxPresenceMembers = 2
	addr, _ := start(t, cfg)
	const ch = "presence-small"
	for _, user := range []string{"a", "b", "a"} {
		c, id := connect(t, addr)
		joinPresence(c, id, ch, user)
	}
	c, id := connect(t, addr)
	auth, data := presenceAuth(id, ch, "c", `{}`)
	c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": ch, "auth": auth, "channel_data": data}})
	m := c.Read()
	var d struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil || m.Event != "pusher:subscription_error" || d.Status != 403 || d.Type != "LimitReached" {
		t.Fatalf("a third user got %+v, want subscription_error 403 LimitReached", m)
	}
}

// A presence subscriber misses no member: users entering while it
// subscribes are in its list or come as member_added after it.
func TestPresenceNoMiss(t *testing.T) {
	addr, _ := start(t, server.Config{})
	const ch, n = "presence-busy", 30
	type member struct {
		c  *client
		id string
	}
	members := make([]member, n)
	for i := range members {
		members[i].c, members[i].id = connect(t, addr)
	}
	join := func(m member, user string) {
		auth, data := presenceAuth(m.id, ch, user, `{}`)
		m.c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": ch, "auth": auth, "channel_data": data}})
	}
	watcher, watcherID := connect(t, addr)
	for i, m := range members {
		if i == n/2 { // the watcher's subscribe among the others'
			join(member{watcher, watcherID}, "watcher")
		}
		join(m, fmt.Sprintf("u%d", i))
	}
	seen := map[string]bool{}
	m := watcher.Read()
	if m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("got %+v", m)
	}
	var d struct {
		Presence struct{ IDs []string } `json:"presence"`
	}
	if err := json.Unmarshal([]byte(m.DataString(t)), &d); err != nil {
		t.Fatal(err)
	}
	for _, id := range d.Presence.IDs {
		seen[id] = true
	}
	for len(seen) < n+1 {
		m := watcher.Read() // fails after a while when a member was missed
		var added struct {
			UserID string `json:"user_id"`
		}
		if m.Event != "pusher_internal:member_added" || json.Unmarshal([]byte(m.DataString(t)), &added) != nil {
			t.Fatalf("got %+v, want member_added", m)
		}
		seen[added.UserID] = true
	}
}
