package pusher_test

import (
	"encoding/json"
	"testing"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/server"
)

// A member's user_info is its channel's: a user in two presence channels
// with different channel_data is shown with each channel's info there,
// to the members already in and to those who come after.
func TestPresenceUserInfoPerChannel(t *testing.T) {
	addr, _ := start(t, server.Config{})
	join := func(c *pushertest.Client, socketID, channel, user, info string) map[string]any {
		t.Helper()
		auth, data := pushertest.PresenceAuth(testApp.Key, testApp.Secret, socketID, channel, user, info)
		c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth, "channel_data": data}})
		m := c.Read()
		if m.Event != "pusher_internal:subscription_succeeded" {
			t.Fatalf("presence subscribe to %s: %+v", channel, m)
		}
		var d struct {
			Presence struct {
				Hash map[string]json.RawMessage `json:"hash"`
			} `json:"presence"`
		}
		if err := json.Unmarshal([]byte(m.DataString(t)), &d); err != nil {
			t.Fatal(err)
		}
		out := map[string]any{}
		for k, v := range d.Presence.Hash {
			out[k] = string(v)
		}
		return out
	}
	bob, bobID := pushertest.Connect(t, addr, testApp.Key)
	join(bob, bobID, "presence-two", "bob", `{"name":"bob"}`)

	ann, annID := pushertest.Connect(t, addr, testApp.Key)
	join(ann, annID, "presence-one", "ann", `{"name":"ann"}`)
	join(ann, annID, "presence-two", "ann", `{"name":"ANN-2"}`)
	if m := bob.Read(); m.Event != "pusher_internal:member_added" || m.DataString(t) != `{"user_id":"ann","user_info":{"name":"ANN-2"}}` {
		t.Fatalf("bob got %+v, want ann added with presence-two's info", m)
	}
	carl, carlID := pushertest.Connect(t, addr, testApp.Key)
	if got := join(carl, carlID, "presence-two", "carl", `{"name":"carl"}`); got["ann"] != `{"name":"ANN-2"}` {
		t.Errorf("carl sees ann in presence-two as %v, want presence-two's info", got["ann"])
	}
	if got := join(carl, carlID, "presence-one", "carl", `{"name":"carl"}`); got["ann"] != `{"name":"ann"}` {
		t.Errorf("carl sees ann in presence-one as %v, want presence-one's info", got["ann"])
	}
}
