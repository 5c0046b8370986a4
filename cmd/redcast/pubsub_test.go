package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/internal/testproxy"
	"github.com/redcast/redcast/internal/wait"

	"go.uber.org/goleak"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// checkLeaks fails the test if goroutines it started outlive it (checked
// after every other cleanup).
func checkLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// pubsubServer runs a redcast server with cfg on a random local port and
// returns its host:port; it is shut down when the test ends.
func pubsubServer(t *testing.T, cfg redcast.Config) string {
	t.Helper()
	addr, _ := testserver.Start(t, server.Config{Node: cfg})
	return addr
}

func wsURL(addr string) string { return "ws://" + addr + "/connection/websocket" }

func noEnv(string) string { return "" }

// output is an io.Writer the test reads while a command writes to it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// lines returns the complete lines written so far.
func (o *output) lines() []string {
	s := o.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// waitUntil polls cond until it holds, failing the test after 15s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Within(t, 15*time.Second, what, cond)
}

// pub runs the pub command and returns what it printed.
func pub(t *testing.T, url string, stdin string, args ...string) []string {
	t.Helper()
	var out, errOut output
	args = append([]string{"--url", url}, args...)
	if err := runPub(t.Context(), args, noEnv, strings.NewReader(stdin), &out, &errOut); err != nil {
		t.Fatalf("pub %q: %v (stderr %q)", args, err, errOut.String())
	}
	return out.lines()
}

// subCmd is a sub command running in the background.
type subCmd struct {
	stdout, stderr output
	cancel         context.CancelFunc
	done           chan error
}

// startSub runs sub with args until stop (or the end of the test).
func startSub(t *testing.T, args ...string) *subCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subCmd{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- runSub(ctx, args, noEnv, &s.stdout, &s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop interrupts sub and returns its error.
func (s *subCmd) stop(t *testing.T) error {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // for a later stop
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("sub did not stop when interrupted")
		return nil
	}
}

// waitLines waits for n lines of output and decodes them.
func (s *subCmd) waitLines(t *testing.T, n int) []subLine {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d lines from sub (stderr %q)", n, s.stderr.String()), func() bool {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("sub ended: %v (stderr %q)", err, s.stderr.String())
		default:
		}
		return len(s.stdout.lines()) >= n
	})
	var out []subLine
	for _, l := range s.stdout.lines() {
		var sl subLine
		if err := json.Unmarshal([]byte(l), &sl); err != nil {
			t.Fatalf("sub printed %q: %v", l, err)
		}
		out = append(out, sl)
	}
	return out
}

// waitSubscribers waits until n connections are subscribed to channel,
// asking presence with token.
func waitSubscribers(t *testing.T, url, channel string, n int, token string) {
	t.Helper()
	c, err := client.Dial(t.Context(), url, client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitUntil(t, fmt.Sprintf("%d subscribers on %s", n, channel), func() bool {
		clients, err := c.Presence(t.Context(), channel)
		return err == nil && len(clients) == n
	})
}

func checkData(t *testing.T, lines []subLine, want ...string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("got %d lines %+v, want %d", len(lines), lines, len(want))
	}
	for i, l := range lines {
		if !sameJSON(l.Data, want[i]) || l.Offset != uint64(i+1) {
			t.Errorf("line %d: offset %d data %s, want offset %d data %s", i, l.Offset, l.Data, i+1, want[i])
		}
	}
}

// sameJSON reports whether got and want encode the same JSON value (the
// server may escape <, > and & as \u003c and the like).
func sameJSON(got json.RawMessage, want string) bool {
	var g, w any
	return json.Unmarshal(got, &g) == nil && json.Unmarshal([]byte(want), &w) == nil && reflect.DeepEqual(g, w)
}

func TestPubThenSubHistory(t *testing.T) {
	checkLeaks(t)
	url := wsURL(pubsubServer(t, redcast.Config{}))
	acks := pub(t, url, "", "news", `{"text":"hi"}`)
	acks = append(acks, pub(t, url, "", "news", "hello world")...)
	acks = append(acks, pub(t, url, "one\n\n  \n[1, 2]\n\"<three> & more\"", "news", "-")...)
	if len(acks) != 5 {
		t.Fatalf("pub printed %q, want 5 acknowledgements", acks)
	}
	var epoch string
	for i, a := range acks {
		var pos struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(a), &pos); err != nil || pos.Offset != uint64(i+1) || pos.Epoch == "" || (epoch != "" && pos.Epoch != epoch) {
			t.Fatalf("acknowledgement %d: %q (%v)", i, a, err)
		}
		epoch = pos.Epoch
	}

	s := startSub(t, "--url", url, "--history", "10", "news")
	lines := s.waitLines(t, 5)
	checkData(t, lines, `{"text":"hi"}`, `"hello world"`, `"one"`, `[1,2]`, `"<three> & more"`)
	for _, l := range lines {
		// redcast pub is anonymous without a name: no "from".
		if l.Channel != "news" || l.Epoch != epoch || l.From != nil {
			t.Errorf("line %+v: want channel news, epoch %s and no publisher", l, epoch)
		}
	}
	if err := s.stop(t); err != nil {
		t.Errorf("sub returned %v when interrupted", err)
	}
}

func TestSubLive(t *testing.T) {
	checkLeaks(t)
	url := wsURL(pubsubServer(t, redcast.Config{}))
	s := startSub(t, "--url", url, "a", "chat:b")
	waitSubscribers(t, url, "a", 1, "")
	waitSubscribers(t, url, "chat:b", 1, "")
	pub(t, url, "", "a", "1")
	pub(t, url, "", "chat:b", "2")
	pub(t, url, "", "a", "3")
	lines := s.waitLines(t, 3)
	got := fmt.Sprintf("%s %d %s, %s %d %s, %s %d %s", lines[0].Channel, lines[0].Offset, lines[0].Data,
		lines[1].Channel, lines[1].Offset, lines[1].Data, lines[2].Channel, lines[2].Offset, lines[2].Data)
	if want := "a 1 1, chat:b 1 2, a 2 3"; got != want {
		t.Errorf("sub printed %s, want %s", got, want)
	}
	if err := s.stop(t); err != nil {
		t.Errorf("sub returned %v when interrupted", err)
	}
}

// TestSubSurvivesDroppedConnection cuts sub's connection while
// publications go on: it reconnects, recovers, and prints each once.
func TestSubSurvivesDroppedConnection(t *testing.T) {
	checkLeaks(t)
	addr := pubsubServer(t, redcast.Config{})
	url := wsURL(addr)
	px := newCutter(t, addr)
	s := startSub(t, "--url", px.url(), "news")
	waitSubscribers(t, url, "news", 1, "")
	pub(t, url, "", "news", "1")
	s.waitLines(t, 1)

	px.setRefuse(true)
	px.cut()
	pub(t, url, "2\n3\n4", "news", "-")
	px.setRefuse(false)
	waitSubscribers(t, url, "news", 1, "")
	pub(t, url, "", "news", "5")
	checkData(t, s.waitLines(t, 5), "1", "2", "3", "4", "5")
	if !strings.Contains(s.stderr.String(), "reconnecting") || !strings.Contains(s.stderr.String(), "reconnected") {
		t.Errorf("stderr %q, want the reconnect reported", s.stderr.String())
	}
	time.Sleep(20 * time.Millisecond) // a duplicate would show up now
	if n := len(s.stdout.lines()); n != 5 {
		t.Errorf("sub printed %d lines, want 5", n)
	}
}

// TestSubRecoveryFailed keeps sub away until history no longer covers the
// gap: it says so on stderr and goes on with the latest publications.
func TestSubRecoveryFailed(t *testing.T) {
	checkLeaks(t)
	ns := auth.DefaultNamespaces()
	small := ns[""]
	small.HistorySize = 2
	ns[""] = small
	addr := pubsubServer(t, redcast.Config{Namespaces: ns})
	url := wsURL(addr)
	px := newCutter(t, addr)
	s := startSub(t, "--url", px.url(), "--history", "1", "news")
	waitSubscribers(t, url, "news", 1, "")
	// A publication seen first proves that sub has its subscribe reply:
	// cut before it, sub would subscribe afresh instead of recovering.
	pub(t, url, "", "news", "1")
	s.waitLines(t, 1)
	px.setRefuse(true)
	px.cut()
	pub(t, url, "2\n3\n4\n5", "news", "-")
	px.setRefuse(false)
	lines := s.waitLines(t, 2)
	if l := lines[1]; l.Offset != 5 || string(l.Data) != `5` {
		t.Errorf("after the failed recovery sub printed %+v, want offset 5 (the latest)", l)
	}
	waitUntil(t, "the failed recovery on stderr", func() bool {
		return strings.Contains(s.stderr.String(), "news: recovery failed")
	})
}

func TestPubSubUsage(t *testing.T) {
	checkLeaks(t)
	for _, run := range []func(args []string, getenv func(string) string, stdout, stderr io.Writer) error{
		func(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
			return runPub(t.Context(), args, getenv, strings.NewReader(""), stdout, stderr)
		},
		func(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
			return runSub(t.Context(), args, getenv, stdout, stderr)
		},
	} {
		var out, errOut output
		if err := run([]string{"--help"}, noEnv, &out, &errOut); err != nil {
			t.Errorf("--help: %v", err)
		}
		if !strings.HasPrefix(errOut.String(), "Usage: redcast ") || !strings.Contains(errOut.String(), "-url") {
			t.Errorf("--help printed %q", errOut.String())
		}
		if err := run(nil, noEnv, &out, &errOut); err == nil {
			t.Error("no arguments accepted")
		}
		if err := run([]string{"--nope", "x", "y"}, noEnv, &out, &errOut); err == nil {
			t.Error("unknown flag accepted")
		}
	}
	var out, errOut output
	if err := runSub(t.Context(), []string{"--history", "1001", "news"}, noEnv, &out, &errOut); err == nil {
		t.Error("--history 1001 accepted")
	}
}

// TestPubSubEnvironment checks the REDCAST_URL and REDCAST_TOKEN fallbacks.
func TestPubSubEnvironment(t *testing.T) {
	checkLeaks(t)
	var f connFlags
	f.fromEnv(noEnv)
	if f.url != defaultURL || f.token != "" {
		t.Errorf("without environment: %+v", f)
	}
	f = connFlags{url: "ws://elsewhere", token: "mine"}
	f.fromEnv(func(string) string { return "env" })
	if f.url != "ws://elsewhere" || f.token != "mine" {
		t.Errorf("flags given: %+v, want them to win", f)
	}

	secret := []byte(strings.Repeat("s", 32))
	verifier, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	token, err := auth.Mint(secret, auth.MintOptions{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	url := wsURL(pubsubServer(t, redcast.Config{Verifier: verifier, RequireToken: true}))
	env := map[string]string{"REDCAST_URL": url, "REDCAST_TOKEN": token}
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithCancel(context.Background())
	s := &subCmd{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- runSub(ctx, []string{"news"}, getenv, &s.stdout, &s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	waitSubscribers(t, url, "news", 1, token)

	var out, errOut output
	if err := runPub(t.Context(), []string{"news", "1"}, getenv, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("pub with REDCAST_URL and REDCAST_TOKEN: %v", err)
	}
	if !strings.HasPrefix(out.String(), `{"offset":1,`) {
		t.Errorf("pub printed %q", out.String())
	}
	if l := s.waitLines(t, 1)[0]; l.From == nil || l.From.User != "alice" {
		t.Errorf("sub printed %+v, want a publication from alice", l)
	}
	urlOnly := func(k string) string { return map[string]string{"REDCAST_URL": url}[k] }
	if err := runPub(t.Context(), []string{"news", "1"}, urlOnly, strings.NewReader(""), &out, &errOut); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Errorf("pub without a token: %v, want error 114", err)
	}
}

// TestPubErrors checks that a refused publication fails the command, and
// that an unreachable server fails sub at once.
func TestPubErrors(t *testing.T) {
	checkLeaks(t)
	url := wsURL(pubsubServer(t, redcast.Config{}))
	var out, errOut output
	err := runPub(t.Context(), []string{"--url", url, "nope:x", "1"}, noEnv, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "nope:x") {
		t.Errorf("publish to an unknown namespace: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := wsURL(ln.Addr().String())
	ln.Close()
	if err := runSub(t.Context(), []string{"--url", closed, "news"}, noEnv, &out, &errOut); err == nil {
		t.Error("sub to a closed port succeeded")
	}
	if err := runSub(t.Context(), []string{"--url", url, "nope:x"}, noEnv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "nope:x") {
		t.Errorf("sub to an unknown namespace: %v", err)
	}
}

// cutter drops sub's connection through a testproxy, and refuses new ones
// to keep it away for a while.
type cutter struct{ *testproxy.Proxy }

func newCutter(t *testing.T, target string) cutter { return cutter{testproxy.New(t, target)} }

func (p cutter) url() string           { return wsURL(p.Addr()) }
func (p cutter) cut()                  { p.Cut() }
func (p cutter) setRefuse(refuse bool) { p.SetRefuse(refuse) }
