package pusher_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

// jsDir holds the Node scenarios and their npm dependencies (pusher-js and
// Pusher's server SDK), which scripts/test installs with npm ci.
const jsDir = "testdata/js"

// startNode starts node with args in jsDir, its environment naming the
// redcast server at addr and testApp (and env), and returns it with its
// stdout and stderr. ctx kills it.
func startNode(t *testing.T, ctx context.Context, addr string, args []string, env ...string) (*exec.Cmd, io.Reader, *strings.Builder) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := nodeCommand(t, ctx, "pusher-js", args...)
	cmd.Env = append(cmd.Env, "PUSHER_HOST="+host, "PUSHER_PORT="+port)
	cmd.Env = append(cmd.Env, env...)
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr
}

// nodeCommand returns node running args in jsDir, its environment naming
// testApp; it fails the test when node or the npm package pkg, which the
// script needs, is missing. ctx kills it.
func nodeCommand(t *testing.T, ctx context.Context, pkg string, args ...string) *exec.Cmd {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the tests of Pusher's libraries: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", pkg)); err != nil {
		t.Fatalf("%s is not installed: run npm ci in transport/pusher/%s (scripts/test does)", pkg, jsDir)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), "PUSHER_APP_ID="+testApp.ID, "PUSHER_KEY="+testApp.Key, "PUSHER_SECRET="+testApp.Secret)
	return cmd
}

// scenario is one run of clients.mjs: the JSON lines it prints.
type scenario struct {
	t     *testing.T
	lines chan map[string]any
}

// runScenario starts clients.mjs with a scenario against the server at
// addr. The process is killed, if still running, when the test ends.
func runScenario(t *testing.T, addr, name string, env ...string) *scenario {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd, stdout, stderr := startNode(t, ctx, addr, []string{"clients.mjs", name}, env...)
	s := &scenario{t: t, lines: make(chan map[string]any, 16)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"error": "not JSON: " + sc.Text()}
			}
			s.lines <- m
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			cancel()
		}
		for range s.lines { // let the scenario end, by itself when it passed
		}
		<-read
		err := cmd.Wait()
		cancel()
		if err != nil && !t.Failed() {
			t.Errorf("%s: %v\n%s", name, err, stderr.String())
		}
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("stderr of %s:\n%s", name, stderr.String())
		}
	})
	return s
}

// step returns the next line, which must be the step want.
func (s *scenario) step(want string) map[string]any {
	s.t.Helper()
	m, ok := <-s.lines
	if !ok {
		s.t.Fatalf("scenario ended before step %q", want)
	}
	if m["step"] != want {
		s.t.Fatalf("got %v, want step %q", m, want)
	}
	return m
}

// asJSON returns v in JSON, to compare what a scenario saw.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pusher-js, unchanged but for wsHost and wsPort, subscribes to a public
// channel and receives what the redcast side publishes to it.
func TestPusherJSPublic(t *testing.T) {
	addr, srv := start(t, server.Config{})
	s := runScenario(t, addr, "public")
	s.step("subscribed")
	for _, data := range []string{`{"pusher_event":"order-shipped","data":"{\"id\":42}"}`, `{"text":"hi"}`} {
		if _, err := srv.Node().Publish(context.Background(), "pusher:news", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	got := asJSON(t, s.step("done")["got"])
	want := `[{"data":{"id":42},"event":"order-shipped"},{"data":{"text":"hi"},"event":"redcast:publication"}]`
	if got != want {
		t.Errorf("pusher-js got %s, want %s", got, want)
	}
}

// pusher-js with channel auth from Pusher's server SDK: two clients
// whisper on a private channel (neither hears itself), a wrong secret is
// refused with 401, and a client event on a public channel is refused
// without ending the connection.
func TestPusherJSPrivate(t *testing.T) {
	addr, _ := start(t, server.Config{})
	s := runScenario(t, addr, "private")
	s.step("subscribed")
	if m := s.step("refused"); m["status"] != float64(401) || m["type"] != "AuthError" {
		t.Errorf("wrong secret: %v, want status 401, type AuthError", m)
	}
	m := s.step("done")
	if got := asJSON(t, m["a_got"]); got != `[{"who":"b"}]` {
		t.Errorf("a heard %s, want only b", got)
	}
	if got := asJSON(t, m["b_got"]); got != `[{"who":"a"}]` {
		t.Errorf("b heard %s, want only a", got)
	}
	if got := asJSON(t, m["a_errors"]); !strings.Contains(got, "only supported on private and presence channels") {
		t.Errorf("a's errors %s, want the refused client event", got)
	}
}

// pusher-js connecting with a key no app has gets 4001 and does not
// reconnect.
func TestPusherJSUnknownKey(t *testing.T) {
	addr, _ := start(t, server.Config{})
	s := runScenario(t, addr, "unknownKey")
	m := s.step("done")
	if m["code"] != float64(4001) {
		t.Errorf("error code %v, want 4001", m["code"])
	}
	// (The first connecting may come before the scenario listens.)
	if got := asJSON(t, m["states"]); strings.Count(got, "connecting") > 1 || !strings.HasSuffix(got, `"disconnected"]`) {
		t.Errorf("states %s, want disconnected and no retry", got)
	}
}

// listenersOfNewsAndOther connects two clients subscribed to news and
// other, and returns them and the second's socket id.
func listenersOfNewsAndOther(t *testing.T, addr string) (listener, excluded *client, excludedID string) {
	t.Helper()
	listener, _ = connect(t, addr)
	excluded, excludedID = connect(t, addr)
	for _, c := range []*client{listener, excluded} {
		for _, ch := range []string{"news", "other"} {
			if m := c.Subscribe(ch, ""); m.Event != "pusher_internal:subscription_succeeded" {
				t.Fatalf("subscribe: %+v", m)
			}
		}
	}
	return listener, excluded, excludedID
}

// Pusher's server SDK triggers an event on two channels through the HTTP
// API: their subscribers get it, except the socket it names; a request
// signed with the wrong secret gets 401.
func TestPusherSDKTrigger(t *testing.T) {
	addr, srv := start(t, server.Config{})
	listener, excluded, excludedID := listenersOfNewsAndOther(t, addr)
	s := runScenario(t, addr, "api", "EXCLUDE_SOCKET="+excludedID)
	if m := s.step("triggered"); m["status"] != float64(200) || asJSON(t, m["body"]) != "{}" {
		t.Errorf("trigger answered %v", m)
	}
	if m := s.step("done"); m["wrong_secret"] != float64(401) {
		t.Errorf("wrong secret answered %v, want 401", m["wrong_secret"])
	}
	for _, ch := range []string{"news", "other"} {
		if m := listener.Read(); m.Event != "hello" || m.Channel != ch || m.DataString(t) != `{"a":1}` {
			t.Errorf("listener got %+v, want hello on %s", m, ch)
		}
	}
	if _, err := srv.Node().Publish(context.Background(), "pusher:news", []byte(`{"pusher_event":"marker"}`)); err != nil {
		t.Fatal(err)
	}
	if m := excluded.Read(); m.Event != "marker" {
		t.Errorf("the excluded socket got %+v, want nothing before the marker", m)
	}
}

// Pusher's server SDK triggers a batch of two events through the HTTP API,
// the second leaving out the socket it names; a batch of 11 is refused
// with 400 and publishes nothing.
func TestPusherSDKTriggerBatch(t *testing.T) {
	addr, srv := start(t, server.Config{})
	listener, excluded, excludedID := listenersOfNewsAndOther(t, addr)
	s := runScenario(t, addr, "batch", "EXCLUDE_SOCKET="+excludedID)
	if m := s.step("triggered"); m["status"] != float64(200) || asJSON(t, m["body"]) != "{}" {
		t.Errorf("triggerBatch answered %v", m)
	}
	if m := s.step("done"); m["over_limit"] != float64(400) {
		t.Errorf("a batch of 11 answered %v, want 400", m["over_limit"])
	}
	for _, want := range []struct{ event, channel, data string }{{"first", "news", `{"n":1}`}, {"second", "other", "two"}} {
		if m := listener.Read(); m.Event != want.event || m.Channel != want.channel || m.DataString(t) != want.data {
			t.Errorf("listener got %+v, want %s on %s", m, want.event, want.channel)
		}
	}
	if m := excluded.Read(); m.Event != "first" {
		t.Errorf("the excluded socket got %+v, want first", m)
	}
	if _, err := srv.Node().Publish(context.Background(), "pusher:news", []byte(`{"pusher_event":"marker"}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{listener, excluded} {
		if m := c.Read(); m.Event != "marker" {
			t.Errorf("got %+v, want nothing more before the marker", m)
		}
	}
}

// Laravel Echo, unchanged on pusher-js: Echo.channel().listen() hears an
// event published on the redcast side, and Echo.private().whisper()
// reaches listenForWhisper on another connection.
func TestLaravelEcho(t *testing.T) {
	addr, srv := start(t, server.Config{})
	s := runScenario(t, addr, "echo")
	s.step("subscribed")
	if _, err := srv.Node().Publish(context.Background(), "pusher:orders", []byte(`{"pusher_event":"order-shipped","data":"{\"id\":42}"}`)); err != nil {
		t.Fatal(err)
	}
	m := s.step("done")
	if got := asJSON(t, m["order"]); got != `{"id":42}` {
		t.Errorf("Echo heard order %s, want {\"id\":42}", got)
	}
	if got := asJSON(t, m["whisper"]); got != `{"name":"b"}` {
		t.Errorf("Echo heard whisper %s, want {\"name\":\"b\"}", got)
	}
}

// Laravel Echo's presence channels: here lists the users, joining and
// leaving follow users coming and going.
func TestLaravelEchoPresence(t *testing.T) {
	addr, _ := start(t, server.Config{})
	m := runScenario(t, addr, "presence").step("done")
	want := `{"ann_here":["ann"],"ben_here":["ann","ben"],"joining":"ben","leaving":"ben","step":"done"}`
	if got := asJSON(t, m); got != want {
		t.Errorf("Echo saw %s, want %s", got, want)
	}
}

// publishTo publishes data to the redcast channel ch of srv.
func publishTo(t *testing.T, srv *server.Server, ch, data string) {
	t.Helper()
	if _, err := srv.Node().Publish(context.Background(), ch, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// pusher-js subscribing to a cache channel gets its last event, not a
// cache miss, before what is published live.
func TestPusherJSCacheHit(t *testing.T) {
	addr, srv := start(t, server.Config{})
	publishTo(t, srv, "pusher:cache-prices", `{"pusher_event":"price","data":"{\"p\":1}"}`)
	publishTo(t, srv, "pusher:cache-prices", `{"pusher_event":"price","data":"{\"p\":2}"}`)
	s := runScenario(t, addr, "cacheHit")
	s.step("subscribed")
	publishTo(t, srv, "pusher:cache-prices", `{"pusher_event":"marker","data":"{}"}`)
	if got := asJSON(t, s.step("done")["got"]); got != `[{"p":2}]` {
		t.Errorf("pusher-js got %s from the cache channel, want only the last event", got)
	}
}

// pusher-js sending 15 client events at once over a rate of 1/s with a
// burst of 5: those over it get error 4301, the others reach the other
// subscriber, and the sender stays connected.
func TestPusherJSClientEventRateLimit(t *testing.T) {
	addr, _ := start(t, server.Config{Pusher: pusher.Config{ClientEventRate: 1, ClientEventBurst: 5}})
	m := runScenario(t, addr, "rateLimit").step("done")
	codes, _ := m["codes"].([]any)
	if len(codes) < 15-5-2 || m["heard"] != float64(15-len(codes)) || m["state"] != "connected" {
		t.Errorf("got %v: want about 10 refusals, the rest heard, the sender connected", m)
	}
	for _, c := range codes {
		if c != float64(4301) {
			t.Errorf("error code %v, want 4301", c)
		}
	}
}

// pusher-js joining a presence channel that holds two users, as a third
// user, gets pusher:subscription_error LimitReached with status 403.
func TestPusherJSPresenceMemberLimit(t *testing.T) {
	addr, _ := start(t, server.Config{Pusher: pusher.Config{MaxPresenceMembers: 2}})
	m := runScenario(t, addr, "memberLimit").step("done")
	if r, _ := m["refused"].(map[string]any); r["type"] != "LimitReached" || r["status"] != float64(403) {
		t.Errorf("the third user got %v, want LimitReached, status 403", m["refused"])
	}
	if got := asJSON(t, m["members"]); got != `["ann","ben"]` {
		t.Errorf("members %s, want ann and ben", got)
	}
}

// pusher-js whose connection the server closes with 4200 reconnects at
// once with a new socket, resubscribes its public and private channels,
// and hears what is published after.
func TestPusherJSReconnectAfter4200(t *testing.T) {
	addr, srv := start(t, server.Config{})
	s := runScenario(t, addr, "reconnect")
	s.step("subscribed")
	if err := srv.Node().DisconnectUser(context.Background(), "pusher:1:ann", protocol.DisconnectForcedReconnect); err != nil {
		t.Fatal(err)
	}
	s.step("resubscribed")
	publishTo(t, srv, "pusher:news", `{"pusher_event":"after","data":"{\"n\":1}"}`)
	publishTo(t, srv, "pusher:private-chat", `{"pusher_event":"after","data":"{\"n\":2}"}`)
	m := s.step("done")
	// (pusher-js reports the one close as several errors.)
	if codes := asJSON(t, m["codes"]); !strings.HasPrefix(codes, `[4200`) || strings.Trim(strings.ReplaceAll(codes, "4200", ""), "[,]") != "" ||
		m["changed"] != true || asJSON(t, m["heard"]) != `[{"n":1},{"n":2}]` {
		t.Errorf("got %v: want error 4200, a new socket, both events heard", m)
	}
	if states := asJSON(t, m["states"]); !strings.HasPrefix(states, `["connecting","connected"`) {
		t.Errorf("states %s, want connecting then connected (no backoff state)", states)
	}
}

// End-to-end encryption on a private-encrypted- channel: Pusher's server
// SDK with a master key authorizes pusher-js (giving it the channel's
// shared secret) and encrypts what it triggers; pusher-js decrypts it.
// redcast passes the ciphertext through: what it keeps holds no
// plaintext.
func TestPusherJSEncrypted(t *testing.T) {
	addr, srv := start(t, server.Config{})
	s := runScenario(t, addr, "encrypted")
	if m := s.step("triggered"); m["status"] != float64(200) {
		t.Errorf("trigger answered %v", m)
	}
	if got := asJSON(t, s.step("done")["got"]); got != `{"code":"open sesame"}` {
		t.Errorf("pusher-js decrypted %s", got)
	}
	h, err := srv.Node().History(context.Background(), "pusher:private-encrypted-vault", 1, nil)
	if err != nil || len(h.Publications) != 1 {
		t.Fatalf("history: %v %v", h, err)
	}
	if d := string(h.Publications[0].Data); strings.Contains(d, "sesame") || !strings.Contains(d, "ciphertext") {
		t.Errorf("redcast kept %s, want only ciphertext", d)
	}
}

// pusher-js on presence-cache- channels: each user joining gets the
// channel's last event, triggered by the server SDK before, whatever
// member events came after it; a channel without one misses.
func TestPusherJSPresenceCache(t *testing.T) {
	addr, _ := start(t, server.Config{})
	m := runScenario(t, addr, "presenceCache").step("done")
	delete(m, "step")
	if got, want := asJSON(t, m), `{"ann":{"note":{"n":1}},"ben":{"note":{"n":1}},"cat":{"note":{"n":1}},"dan":"miss","status":200}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
