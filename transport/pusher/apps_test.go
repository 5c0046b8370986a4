package pusher_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/internal/pushertest"
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
	bAuth := func(socketID, ch string) string {
		return appB.Key + strings.TrimPrefix(authFor(appB.Secret, socketID, ch), testApp.Key)
	}
	var bs []*client
	for range 2 {
		c, id := pushertest.Connect(t, addr, appB.Key)
		for _, ch := range []string{"news", "private-chat"} {
			auth := ""
			if ch == "private-chat" {
				auth = bAuth(id, ch)
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
