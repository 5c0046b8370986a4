package pusher_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/internal/webhooktest"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
	"github.com/redcast/redcast/webhook"
)

// checkedHook is what Pusher's server SDK made of one webhook request
// (testdata/js/webhook.mjs).
type checkedHook struct {
	Valid                bool             `json:"valid"`
	ValidWithWrongSecret bool             `json:"validWithWrongSecret"`
	Time                 int64            `json:"time"`
	Events               []map[string]any `json:"events"`
}

// checkHooks has Pusher's server SDK validate the requests a receiver got
// and read their events.
func checkHooks(t *testing.T, reqs []webhooktest.Request) []checkedHook {
	t.Helper()
	type request struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	var in []request
	for _, r := range reqs {
		h := make(map[string]string)
		for k := range r.Header {
			h[strings.ToLower(k)] = r.Header.Get(k)
		}
		in = append(in, request{h, string(r.Body)})
	}
	b, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := nodeCommand(t, ctx, "pusher", "webhook.mjs")
	cmd.Stdin = bytes.NewReader(b)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("webhook.mjs: %v\n%s", err, stderr.String())
	}
	var checked []checkedHook
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var c checkedHook
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("webhook.mjs printed %q: %v", sc.Text(), err)
		}
		checked = append(checked, c)
	}
	if len(checked) != len(reqs) {
		t.Fatalf("webhook.mjs checked %d requests of %d", len(checked), len(reqs))
	}
	return checked
}

// sdkEvents has the SDK check every request the receiver got and returns
// their events, in order, as JSON lines.
func sdkEvents(t *testing.T, r *webhooktest.Receiver) []string {
	t.Helper()
	var evs []string
	for i, c := range checkHooks(t, r.Requests()) {
		if !c.Valid || c.ValidWithWrongSecret {
			t.Errorf("request %d: valid %v, with a wrong secret %v; want true, false", i, c.Valid, c.ValidWithWrongSecret)
		}
		if d := time.Since(time.UnixMilli(c.Time)); d < 0 || d > time.Minute {
			t.Errorf("request %d: time_ms %d is %v from now", i, c.Time, d)
		}
		for _, e := range c.Events {
			evs = append(evs, asJSON(t, e))
		}
	}
	return evs
}

// hookApp is testApp with webhooks to r.
func hookApp(r *webhooktest.Receiver) server.Config {
	app := testApp
	app.WebhookURL = r.URL()
	return server.Config{Pusher: pusher.Config{Apps: []pusher.App{app}}, Webhooks: webhook.Config{Window: 5 * time.Millisecond}}
}

// Pusher's webhooks, checked by Pusher's own server SDK: signatures, and
// every event as Pusher sends it, in order, with channels named as the
// app names them.
func TestWebhooks(t *testing.T) {
	r := webhooktest.Start(t, nil)
	addr, _ := start(t, hookApp(r))
	alice, aliceID := connect(t, addr)
	joinPresence(alice, aliceID, "presence-room", "alice")
	bob, bobID := connect(t, addr)
	joinPresence(bob, bobID, "presence-room", "bob")
	if m := alice.Read(); m.Event != "pusher_internal:member_added" {
		t.Fatal(m)
	}
	bob.Send(map[string]any{"event": "client-typing", "channel": "presence-room", "data": map[string]int{"x": 1}})
	if m := alice.Read(); m.Event != "client-typing" {
		t.Fatal(m)
	}
	if m := alice.Subscribe("private-chat", authFor(testApp.Secret, aliceID, "private-chat")); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatal(m)
	}
	alice.Send(map[string]any{"event": "client-note", "channel": "private-chat", "data": "plain text"})
	if m := alice.Subscribe("cache-news", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatal(m)
	}
	if m := alice.Read(); m.Event != "pusher:cache_miss" {
		t.Fatal(m)
	}
	bob.NC.Close()
	if m := alice.Read(); m.Event != "pusher_internal:member_removed" {
		t.Fatal(m)
	}
	alice.NC.Close()
	want := map[string][]string{
		"presence-room": {
			`{"channel":"presence-room","name":"channel_occupied"}`,
			`{"channel":"presence-room","name":"member_added","user_id":"alice"}`,
			`{"channel":"presence-room","name":"member_added","user_id":"bob"}`,
			fmt.Sprintf(`{"channel":"presence-room","data":"{\"x\":1}","event":"client-typing","name":"client_event","socket_id":%q,"user_id":"bob"}`, bobID),
			`{"channel":"presence-room","name":"member_removed","user_id":"bob"}`,
			`{"channel":"presence-room","name":"member_removed","user_id":"alice"}`,
			`{"channel":"presence-room","name":"channel_vacated"}`,
		},
		"private-chat": {
			`{"channel":"private-chat","name":"channel_occupied"}`,
			fmt.Sprintf(`{"channel":"private-chat","data":"plain text","event":"client-note","name":"client_event","socket_id":%q}`, aliceID),
			`{"channel":"private-chat","name":"channel_vacated"}`,
		},
		"cache-news": {
			`{"channel":"cache-news","name":"channel_occupied"}`,
			`{"channel":"cache-news","name":"cache_miss"}`,
			`{"channel":"cache-news","name":"channel_vacated"}`,
		},
	}
	wait.For(t, "the webhooks", func() bool { return r.Count("channel_vacated", "") == 3 })
	got := byChannel(sdkEvents(t, r))
	for ch, w := range want {
		if strings.Join(got[ch], "\n") != strings.Join(w, "\n") {
			t.Errorf("webhook events of %s:\n%s\nwant:\n%s", ch, strings.Join(got[ch], "\n"), strings.Join(w, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("webhooks of %d channels, want %d", len(got), len(want))
	}
}

// byChannel groups events (JSON) by channel, keeping their order.
func byChannel(evs []string) map[string][]string {
	out := map[string][]string{}
	for _, e := range evs {
		var ev struct{ Channel string }
		_ = json.Unmarshal([]byte(e), &ev)
		out[ev.Channel] = append(out[ev.Channel], e)
	}
	return out
}

// Two nodes on Redis: a presence channel joined on both nodes at the same
// moment by the same user is one channel_occupied and one member_added;
// left on both at once, one member_removed and one channel_vacated.
func TestWebhooksTwoNodes(t *testing.T) {
	r := webhooktest.Start(t, nil)
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("hook%d", time.Now().UnixNano())
	var addrs []string
	for range 2 {
		rb, err := redis.New(context.Background(), redis.Config{URL: rs.URL(), Prefix: prefix, PresenceTTL: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cfg := hookApp(r)
		cfg.Broker, cfg.Presence = rb, rb
		addr, _ := start(t, cfg)
		addrs = append(addrs, addr)
	}
	const rounds = 5
	for i := range rounds {
		ch := fmt.Sprintf("presence-r%d", i)
		type joined struct {
			c  *client
			id string
		}
		var cs []joined
		for _, addr := range addrs {
			c, id := connect(t, addr)
			cs = append(cs, joined{c, id})
		}
		done := make(chan struct{})
		for _, j := range cs {
			go func() {
				defer func() { done <- struct{}{} }()
				auth, data := presenceAuth(j.id, ch, "carol", `{}`)
				j.c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": ch, "auth": auth, "channel_data": data}})
			}()
		}
		<-done
		<-done
		for _, j := range cs {
			if m := j.c.Read(); m.Event != "pusher_internal:subscription_succeeded" {
				t.Fatal(m)
			}
		}
		for _, j := range cs {
			j.c.NC.Close()
		}
	}
	wait.For(t, "the webhooks", func() bool { return r.Count("channel_vacated", "") == rounds })
	// A duplicate from the slower node would be as quick: one more
	// transition through the receiver marks the moment.
	mark, markID := connect(t, addrs[1])
	joinPresence(mark, markID, "presence-mark", "mark")
	wait.For(t, "the mark", func() bool { return r.Count("member_added", "presence-mark") == 1 })
	got := byChannel(sdkEvents(t, r))
	for i := range rounds {
		ch := fmt.Sprintf("presence-r%d", i)
		// Each once. Each node sends its own webhooks: transitions two
		// nodes decide within moments of each other (here, all of them)
		// may arrive in either order (see docs/webhooks.md).
		at := map[string]int{}
		for j, e := range got[ch] {
			var ev struct{ Name string }
			_ = json.Unmarshal([]byte(e), &ev)
			if _, dup := at[ev.Name]; dup {
				t.Errorf("%s: %s twice", ch, ev.Name)
			}
			at[ev.Name] = j
		}
		if len(at) != 4 || len(got[ch]) != 4 {
			t.Errorf("%s: %v, want occupied, member_added, member_removed, vacated once each", ch, got[ch])
		}
	}
}
