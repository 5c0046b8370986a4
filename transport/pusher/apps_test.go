package pusher_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/protocol"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	rcclient "github.com/redcast/redcast/client"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

// Two apps on one server are separate: an event to app A's channel does
// not reach app B's client on a channel of the same name.
func TestPusherAppsSeparate(t *testing.T) {
	appB := pusher.App{ID: "2", Key: "b-key", Secret: "b-secret", Namespace: "pusher-2", PresenceNamespace: "pusher-presence-2"}
	addr, _ := start(t, server.Config{Pusher: pusher.Config{Apps: []pusher.App{testApp, appB}}})
	a, _ := connect(t, addr)
	if m := a.Subscribe("news", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatalf("app A subscribe: %+v", m)
	}
	// b1 is on B's news and private-chat; b2 whispers on private-chat
	// once A's event is out, which b1 must get first.
	var bs []*client
	for range 2 {
		c, id := pushertest.Connect(t, addr, appB.Key)
		for _, ch := range []string{"news", "private-chat"} {
			auth := ""
			if ch == "private-chat" {
				auth = pushertest.ChannelAuth(appB.Key, appB.Secret, id, ch)
			}
			if m := c.Subscribe(ch, auth); m.Event != "pusher_internal:subscription_succeeded" {
				t.Fatalf("app B subscribe to %s: %+v", ch, m)
			}
		}
		bs = append(bs, c)
	}
	if status, body := signedPost(t, addr, "/apps/1/events", testApp.Secret, `{"name":"hello","channels":["news"],"data":"{}"}`, time.Now(), nil); status != 200 {
		t.Fatalf("trigger to app A: %d %s", status, body)
	}
	if m := a.Read(); m.Event != "hello" || m.Channel != "news" {
		t.Fatalf("app A's client got %+v, want hello", m)
	}
	bs[1].Send(map[string]any{"event": "client-ping", "channel": "private-chat", "data": map[string]any{}})
	if m := bs[0].Read(); m.Event != "client-ping" {
		t.Errorf("app B's client got %+v, want only B's client-ping", m)
	}
}

// Users are an app's: terminate_connections of app 1's user 42 closes
// only that user's connections, not app 2's user 42 nor a redcast client
// whose user is 42; both apps' presence members and the HTTP API show the
// Pusher user id, "42", unchanged.
func TestPusherUsersScopedPerApp(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-users")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	appB := pusher.App{ID: "2", Key: "b-key", Secret: "b-secret", Namespace: "pusher-2", PresenceNamespace: "pusher-presence-2"}
	addr, _ := start(t, server.Config{Node: redcast.Config{Verifier: v}, Pusher: pusher.Config{Apps: []pusher.App{testApp, appB}}})

	// App 1's user 42: one connection signed in, one in a presence channel.
	signedIn, signedInID := connect(t, addr)
	signin(signedIn, testApp.Secret, signedInID, `{"id":"42"}`)
	if m := signedIn.Read(); m.Event != "pusher:signin_success" {
		t.Fatalf("signin: %+v", m)
	}
	present, presentID := connect(t, addr)
	if p := joinPresence(present, presentID, "presence-room", "42"); asJSON(t, p["ids"]) != `["42"]` {
		t.Fatalf("app 1's presence lists %v, want [\"42\"]", p["ids"])
	}
	// App 2's user 42 and ann, in a presence channel of the same name.
	other42, other42ID := pushertest.Connect(t, addr, appB.Key)
	other42.JoinPresence(appB.Key, appB.Secret, other42ID, "presence-room", "42")
	ann, annID := pushertest.Connect(t, addr, appB.Key)
	if p := ann.JoinPresence(appB.Key, appB.Secret, annID, "presence-room", "ann"); asJSON(t, p["ids"]) != `["42","ann"]` {
		t.Fatalf("app 2's presence lists %v, want 42 and ann", p["ids"])
	}
	if m := other42.Read(); m.Event != "pusher_internal:member_added" || m.DataString(t) != `{"user_id":"ann","user_info":{"name":"ann"}}` {
		t.Fatalf("app 2's 42 got %+v, want ann added", m)
	}
	// A redcast client whose user is 42.
	tok, err := auth.Mint(secret, auth.MintOptions{User: "42"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pushertest.Timeout)
	defer cancel()
	native, err := rcclient.Dial(ctx, "ws://"+addr+"/connection/websocket", rcclient.Options{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()
	// A redcast client cannot pass for a Pusher user: such names are
	// reserved.
	fake, err := auth.Mint(secret, auth.MintOptions{User: "pusher:1:42"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rcclient.Dial(ctx, "ws://"+addr+"/connection/websocket", rcclient.Options{Token: fake})
	if perr, ok := errors.AsType[*protocol.Error](err); !ok || perr.Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("a redcast token naming app 1's user 42: %v, want 114", err)
	}

	// Each app's backend is Pusher's server SDK with the app's credentials.
	appBEnv := []string{"PUSHER_APP_ID=" + appB.ID, "PUSHER_KEY=" + appB.Key, "PUSHER_SECRET=" + appB.Secret}
	if m := runScenario(t, addr, "users", append(appBEnv, "CHANNEL=presence-room")...).step("done"); m["status"] != float64(200) || m["body"] != `{"users":[{"id":"42"},{"id":"ann"}]}`+"\n" {
		t.Fatalf("app 2's users: %v", m)
	}
	if m := runScenario(t, addr, "terminate", "TERMINATE_USER=42").step("done"); m["status"] != float64(200) {
		t.Fatalf("terminate: %v", m)
	}
	for i, c := range []*client{signedIn, present} {
		if code, _ := c.ReadClose(); code != 4009 {
			t.Errorf("app 1's connection %d of user 42 closed with %d, want 4009", i, code)
		}
	}
	// Terminating app 2's ann says, by the order of what 42 of app 2
	// hears, that the first request was handled before.
	if m := runScenario(t, addr, "terminate", append(appBEnv, "TERMINATE_USER=ann")...).step("done"); m["status"] != float64(200) {
		t.Fatalf("terminate ann: %v", m)
	}
	if m := other42.Read(); m.Event != "pusher_internal:member_removed" || m.DataString(t) != `{"user_id":"ann"}` {
		t.Fatalf("app 2's 42 got %+v, want ann removed and nothing else", m)
	}
	// A context of its own: the one of the dials above may have run out
	// while the scenarios ran (each starts Node.js).
	pctx, pcancel := context.WithTimeout(context.Background(), pushertest.Timeout)
	defer pcancel()
	if err := native.Ping(pctx); err != nil {
		t.Errorf("the redcast client of user 42: %v, want it connected", err)
	}
}

// An app's own limits: app 2 holds two connections per node, events of
// 20 bytes and presence channels of one user; app 1 keeps the defaults.
func TestPusherAppLimits(t *testing.T) {
	appB := pusher.App{ID: "2", Key: "b-key", Secret: "b-secret", Namespace: "pusher-2", PresenceNamespace: "pusher-presence-2",
		MaxConnections: 2, MaxEventSize: 20, MaxPresenceMembers: 1}
	addr, _ := start(t, server.Config{Pusher: pusher.Config{Apps: []pusher.App{testApp, appB}}})
	b1, b1ID := pushertest.Connect(t, addr, appB.Key)
	b2, b2ID := pushertest.Connect(t, addr, appB.Key)
	b3 := pushertest.Dial(t, addr, appB.Key, "protocol=7")
	if code, msg := errorData(t, b3.Read()); code == nil || *code != 4004 || !strings.Contains(msg, "over connection quota") {
		t.Errorf("a third connection of app 2: %v %q, want 4004", code, msg)
	}
	if code, _ := b3.ReadClose(); code != 4004 {
		t.Errorf("closed with %d, want 4004", code)
	}
	for range 3 { // app 1 is not bound
		connect(t, addr)
	}

	b1.JoinPresence(appB.Key, appB.Secret, b1ID, "presence-room", "ann")
	auth, data := pushertest.PresenceAuth(appB.Key, appB.Secret, b2ID, "presence-room", "ben", `{}`)
	b2.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "presence-room", "auth": auth, "channel_data": data}})
	if m := b2.Read(); m.Event != "pusher:subscription_error" || !strings.Contains(string(m.Data), "LimitReached") {
		t.Errorf("a second user in app 2's presence-room: %+v, want LimitReached", m)
	}
	b1.Send(map[string]any{"event": "client-big", "channel": "presence-room", "data": map[string]string{"x": strings.Repeat("x", 20)}})
	if _, msg := errorData(t, b1.Read()); !strings.Contains(msg, "larger than 20 bytes") {
		t.Errorf("app 2's client event of 30 bytes: %q, want refused", msg)
	}
	big := `{"name":"e","channels":["news"],"data":"` + strings.Repeat("x", 30) + `"}`
	if status, body := postAs(t, addr, appB, "/apps/2/events", big, time.Now(), nil); status != 413 || !strings.Contains(body, "larger than 20 bytes") {
		t.Errorf("app 2's event of 32 bytes: %d %s, want 413", status, body)
	}
	if status, body := signedPost(t, addr, "/apps/1/events", testApp.Secret, big, time.Now(), nil); status != 200 {
		t.Errorf("app 1's event of 32 bytes: %d %s, want 200", status, body)
	}

	// Once b1 is gone, another connection of app 2 gets in.
	b1.NC.Close()
	wait.For(t, "a connection of app 2 let in", func() bool {
		return pushertest.Dial(t, addr, appB.Key, "protocol=7").Read().Event == "pusher:connection_established"
	})
}
