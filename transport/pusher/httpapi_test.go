package pusher_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

// signedPost posts body to path as Pusher's server libraries sign it, for
// testApp with the given secret and timestamp, letting edit change the
// query after signing. It returns the status and body.
func signedPost(t *testing.T, addr, path, secret, body string, ts time.Time, edit func(url.Values)) (int, string) {
	t.Helper()
	return postAs(t, addr, pusher.App{Key: testApp.Key, Secret: secret}, path, body, ts, edit)
}

// postAs posts body to path signed with app's key and secret at ts (edit,
// when not nil, changes the query after signing), and returns the status
// and body.
func postAs(t *testing.T, addr string, app pusher.App, path, body string, ts time.Time, edit func(url.Values)) (int, string) {
	t.Helper()
	q := pushertest.SignRequest(app.Key, app.Secret, http.MethodPost, path, nil, []byte(body), ts)
	if edit != nil {
		edit(q)
	}
	resp, err := http.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
	return answer(t, resp, err)
}

// answer returns the status and body of an HTTP response (err: the
// request's error, which fails the test).
func answer(t *testing.T, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Requests the HTTP API must refuse get Pusher's status and a message that
// says why; nothing is published.
func TestAPIRefuses(t *testing.T) {
	addr, _ := start(t, server.Config{})
	c, _ := connect(t, addr)
	if m := c.Subscribe("news", ""); m.Event != "pusher_internal:subscription_succeeded" {
		t.Fatal(m)
	}
	now := time.Now()
	event := `{"name":"e","channels":["news"],"data":"{}"}`
	many := `{"name":"e","data":"{}","channels":["c0"` + strings.Repeat(`,"c"`, 100) + `]}`
	for _, tc := range []struct {
		name, path, secret, body string
		ts                       time.Time
		edit                     func(url.Values)
		status                   int
		msg                      string
	}{
		{"wrong secret", "/apps/1/events", "nope", event, now, nil, 401, "invalid signature"},
		{"stale", "/apps/1/events", testApp.Secret, event, now.Add(-11 * time.Minute), nil, 401, "timestamp expired"},
		{"unknown app", "/apps/2/events", testApp.Secret, event, now, nil, 401, "unknown app"},
		{"body changed", "/apps/1/events", testApp.Secret, event, now, func(q url.Values) { q.Set("body_md5", "00") }, 401, "body_md5"},
		{"unsigned", "/apps/1/events", testApp.Secret, event, now, func(q url.Values) { q.Del("auth_signature") }, 401, "invalid signature"},
		{"too many channels", "/apps/1/events", testApp.Secret, many, now, nil, 400, "1 to 100 channels"},
		{"too large", "/apps/1/events", testApp.Secret, `{"name":"e","channel":"news","data":"` + strings.Repeat("x", 11<<10) + `"}`, now, nil, 413, "larger than"},
		{"bad channel", "/apps/1/events", testApp.Secret, `{"name":"e","channel":"a;b","data":"1"}`, now, nil, 400, "Invalid channel"},
		{"batch signed wrong", "/apps/1/batch_events", "nope", `{"batch":[{"name":"e","channel":"news","data":"1"}]}`, now, nil, 401, "invalid signature"},
		{"empty batch", "/apps/1/batch_events", testApp.Secret, `{"batch":[]}`, now, nil, 400, "1 to 10 events"},
		{"batch event without channel", "/apps/1/batch_events", testApp.Secret, `{"batch":[{"name":"e","channel":"news","data":"1"},{"name":"e","data":"1"}]}`, now, nil, 400, "Event 1 of the batch"},
		{"batch event too large", "/apps/1/batch_events", testApp.Secret, `{"batch":[{"name":"e","channel":"news","data":"1"},{"name":"e","channel":"news","data":"` + strings.Repeat("x", 11<<10) + `"}]}`, now, nil, 413, "Event 1 of the batch"},
		{"terminate signed wrong", "/apps/1/users/ann/terminate_connections", "nope", `{}`, now, nil, 401, "invalid signature"},
		{"unknown info", "/apps/1/events", testApp.Secret, `{"name":"e","channel":"news","data":"1","info":"members"}`, now, nil, 400, "Unknown info attribute"},
		{"bad socket id", "/apps/1/events", testApp.Secret, `{"name":"e","channel":"news","data":"1","socket_id":"x"}`, now, nil, 400, "socket_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := signedPost(t, addr, tc.path, tc.secret, tc.body, tc.ts, tc.edit)
			if status != tc.status || !strings.Contains(body, tc.msg) {
				t.Errorf("got %d %q, want %d with %q", status, body, tc.status, tc.msg)
			}
		})
	}
	// A good request after all that: the subscriber gets only it.
	if status, body := signedPost(t, addr, "/apps/1/events", testApp.Secret, `{"name":"ok","channel":"news","data":"1"}`, now, nil); status != 200 {
		t.Fatalf("good request: %d %s", status, body)
	}
	if m := c.Read(); m.Event != "ok" {
		t.Errorf("subscriber got %+v, want only the good event", m)
	}
}
