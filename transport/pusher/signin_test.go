package pusher_test

import (
	"strings"
	"testing"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/server"
)

// signinAuth returns the auth of a pusher:signin to testApp with
// userData, signed with secret as the server SDKs' authenticateUser signs
// it.
func signinAuth(secret, socketID, userData string) string {
	return pushertest.SigninAuth(testApp.Key, secret, socketID, userData)
}

// signin sends pusher:signin with userData signed with secret.
func signin(c *client, secret, socketID, userData string) {
	c.Send(map[string]any{"event": "pusher:signin", "data": map[string]string{
		"auth": signinAuth(secret, socketID, userData), "user_data": userData}})
}

// A signed user_data makes the connection its user's: signin_success
// echoes it, and a presence subscribe as another user is refused.
func TestPusherSignin(t *testing.T) {
	addr, _ := start(t, server.Config{})
	c, id := connect(t, addr)
	userData := `{"id":"ann","user_info":{"name":"Ann"}}`
	signin(c, testApp.Secret, id, userData)
	m := c.Read()
	if m.Event != "pusher:signin_success" || m.DataString(t) != `{"user_data":"{\"id\":\"ann\",\"user_info\":{\"name\":\"Ann\"}}"}` {
		t.Fatalf("got %+v, want signin_success", m)
	}
	if m := c.Subscribe("#server-to-user-ann", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Errorf("server-to-user subscribe: got %+v, want subscription_succeeded", m)
	}
	auth, data := presenceAuth(id, "presence-room", "ben", `{}`)
	c.Send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "presence-room", "auth": auth, "channel_data": data}})
	if m := c.Read(); m.Event != "pusher:subscription_error" || !strings.Contains(string(m.Data), `403`) {
		t.Errorf("presence as another user: got %+v, want subscription_error 403", m)
	}
	if p := joinPresence(c, id, "presence-room", "ann"); p["count"] != float64(1) {
		t.Errorf("presence as the signed-in user: %v", p)
	}
}

// A refused signin gets pusher:error 4009 and the connection is closed
// with 4009 (clients do not reconnect).
func TestPusherSigninRefused(t *testing.T) {
	addr, _ := start(t, server.Config{})
	for _, tc := range []struct{ name, secret, socket, userData, want string }{
		{"wrong secret", "not-the-secret", "", `{"id":"ann"}`, "invalid signature"},
		{"another socket", testApp.Secret, "1.2", `{"id":"ann"}`, "invalid signature"},
		{"no id", testApp.Secret, "", `{"user_info":{}}`, "needs an id"},
		{"number id", testApp.Secret, "", `{"id":7}`, "needs an id"},
		{"empty id", testApp.Secret, "", `{"id":""}`, "1 to 128 bytes"},
		{"not JSON", testApp.Secret, "", `ann`, "not a JSON object"},
		{"too large", testApp.Secret, "", `{"id":"ann","user_info":"` + strings.Repeat("x", 5000) + `"}`, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, id := connect(t, addr)
			socket := tc.socket
			if socket == "" {
				socket = id
			}
			c.Send(map[string]any{"event": "pusher:signin", "data": map[string]string{
				"auth": signinAuth(tc.secret, socket, tc.userData), "user_data": tc.userData}})
			code, msg := errorData(t, c.Read())
			if code == nil || *code != 4009 || !strings.Contains(msg, tc.want) {
				t.Errorf("got pusher:error %v %q, want 4009 with %q", code, msg, tc.want)
			}
			if code, _ := c.ReadClose(); code != 4009 {
				t.Errorf("closed with %d, want 4009", code)
			}
		})
	}
}

// pusher-js's signin() with the auth of the pusher SDK's authenticateUser
// signs in; terminateUserConnections then closes that connection, which
// is in no presence channel, with 4009. A signin signed with the wrong
// secret is refused with 4009.
func TestPusherJSSignin(t *testing.T) {
	addr, _ := start(t, server.Config{})
	s := runScenario(t, addr, "signin")
	if m := s.step("signed_in"); asJSON(t, m["user"]) != `{"id":"ann","user_info":{"name":"ann"}}` {
		t.Errorf("signed in as %v", m["user"])
	}
	if m := s.step("refused"); m["code"] != float64(4009) || !strings.Contains(asJSON(t, m["message"]), "invalid signature") {
		t.Errorf("bad signin: %v, want 4009", m)
	}
	if m := s.step("done"); m["status"] != float64(200) || asJSON(t, m["closed"]) != `{"code":4009,"state":"disconnected"}` {
		t.Errorf("terminate: %v", m)
	}
}

// A connection is one user: a signin as another user than the one it
// entered a presence channel as is refused with 4009.
func TestPusherSigninAsAnotherUser(t *testing.T) {
	addr, _ := start(t, server.Config{})
	c, id := connect(t, addr)
	joinPresence(c, id, "presence-room", "ben")
	signin(c, testApp.Secret, id, `{"id":"ann"}`)
	code, msg := errorData(t, c.Read())
	if code == nil || *code != 4009 || !strings.Contains(msg, `user "ben" already`) {
		t.Errorf("got pusher:error %v %q, want 4009 naming ben", code, msg)
	}
	if code, _ := c.ReadClose(); code != 4009 {
		t.Errorf("closed with %d, want 4009", code)
	}
}

// Events to users: the server SDK's sendToUser reaches the connection
// pusher-js signed in as that user, and no other.
func TestPusherJSSendToUser(t *testing.T) {
	addr, _ := start(t, server.Config{})
	m := runScenario(t, addr, "sendToUser").step("done")
	if m["status"] != float64(200) || asJSON(t, m["ann"]) != `{"to":"ann"}` || asJSON(t, m["ben"]) != `[]` {
		t.Errorf("got %v: want ann's event at ann only", m)
	}
}

// Only the connection signed in as a user may subscribe to its channel of
// events to users: not one that is not signed in, nor one signed in as
// another user, nor one in a presence channel as that user.
func TestServerToUserRefused(t *testing.T) {
	addr, _ := start(t, server.Config{})
	c, id := connect(t, addr)
	joinPresence(c, id, "presence-room", "ann")
	signedIn, signedInID := connect(t, addr)
	signin(signedIn, testApp.Secret, signedInID, `{"id":"ben"}`)
	if m := signedIn.Read(); m.Event != "pusher:signin_success" {
		t.Fatalf("signin: %+v", m)
	}
	for _, tc := range []struct {
		c  *client
		ch string
	}{{c, "#server-to-user-ann"}, {signedIn, "#server-to-user-ann"}} {
		m := tc.c.Subscribe(tc.ch, "")
		if m.Event != "pusher:subscription_error" || !strings.Contains(string(m.Data), `"status":403`) {
			t.Errorf("subscribe to %s: %+v, want status 403", tc.ch, m)
		}
	}
	if m := signedIn.Subscribe("#server-to-user-ben", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Errorf("ben's own channel: %+v", m)
	}
}
