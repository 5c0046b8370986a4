package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
)

// cliResult is what a run of the redcast binary printed and its exit status.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the redcast binary with args, stdin as its standard input
// and env added to an environment without REDCAST_ variables, and waits for
// it to exit (within waitTimeout).
func runCLI(t *testing.T, stdin string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.CommandContext(testContext(t), redcastBinary(t), args...)
	cmd.Env = append(cliEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("redcast %s: %v", strings.Join(args, " "), err)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// TestCLIVersion: `redcast version` prints the version, the commit when the
// go command recorded one, and the Go release, and nothing else.
func TestCLIVersion(t *testing.T) {
	r := runCLI(t, "", nil, "version")
	want := regexp.MustCompile(`^redcast ` + regexp.QuoteMeta(redcast.Version) + ` \((commit [0-9a-f]{40}(-dirty)?, )?go\S+\)\n$`)
	if r.code != 0 || !want.MatchString(r.stdout) || r.stderr != "" {
		t.Errorf("redcast version: %v, want exit 0 and stdout matching %s", r, want)
	}
}

// TestCLIHelp: --help of the server and of every command exits 0 and
// describes its flags.
func TestCLIHelp(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		usage string
		flags []string
	}{
		{[]string{"--help"}, "Usage: redcast [serve]", []string{"-addr", "-redis", "-redis-prefix", "-shutdown-timeout", "-token-secret", "-history-size", "-config"}},
		{[]string{"-h"}, "Usage: redcast [serve]", []string{"-addr", "-redis"}},
		{[]string{"serve", "--help"}, "Usage: redcast [serve]", []string{"-addr", "-redis"}},
		{[]string{"pub", "--help"}, "Usage: redcast pub", []string{"-url", "-token"}},
		{[]string{"sub", "--help"}, "Usage: redcast sub", []string{"-url", "-token", "-history"}},
		{[]string{"token", "--help"}, "Usage: redcast token", []string{"-user", "-secret", "-ttl", "-info", "-channel"}},
		{[]string{"bench", "--help"}, "Usage: redcast bench", []string{"-url", "-scenario", "-subscribers", "-channels", "-rate", "-duration"}},
		{[]string{"version", "--help"}, "Usage: redcast version", nil},
		{[]string{"chaos", "--help"}, "Usage: redcast chaos", []string{"-nodes", "-clients", "-cluster", "-soak", "-long", "-duration"}},
	} {
		r := runCLI(t, "", nil, tc.args...)
		name := "redcast " + strings.Join(tc.args, " ")
		if r.code != 0 || r.stdout != "" {
			t.Errorf("%s: %v, want exit 0 with help on stderr", name, r)
			continue
		}
		if !strings.HasPrefix(r.stderr, tc.usage) {
			t.Errorf("%s printed %q, want it to start with %q", name, r.stderr, tc.usage)
		}
		for _, f := range tc.flags {
			if !strings.Contains(r.stderr, "  "+f+" ") && !strings.Contains(r.stderr, "  "+f+"\n") {
				t.Errorf("%s does not describe %s:\n%s", name, f, r.stderr)
			}
		}
	}
}

// TestCLIBadUsage: a wrong command line exits 1 and its last line says
// what was wrong.
func TestCLIBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the last line of stderr
	}{
		{[]string{"nosuch"}, `redcast: unknown command "nosuch" (commands: serve, pub, sub, token, bench, chaos, version)`},
		{[]string{"--nosuch"}, "redcast: flag provided but not defined: -nosuch"},
		{[]string{"--addr"}, "redcast: flag needs an argument: -addr"},
		{[]string{"--history-size", "many"}, `redcast: invalid value "many" for flag -history-size: parse error`},
		{[]string{"serve", "extra"}, `redcast: unexpected argument "extra"`},
		{[]string{"--log-level", "loud"}, `redcast: --log-level: slog: level string "loud": unknown name`},
		{[]string{"version", "extra"}, `redcast: version: unexpected argument "extra"`},
		{[]string{"pub"}, "redcast: pub: want CHANNEL and DATA"},
		{[]string{"pub", "chat:x"}, "redcast: pub: want CHANNEL and DATA"},
		{[]string{"pub", "--nosuch", "chat:x", "1"}, "redcast: flag provided but not defined: -nosuch"},
		{[]string{"sub"}, "redcast: sub: want at least one CHANNEL"},
		{[]string{"sub", "--history", "1001", "chat:x"}, "redcast: sub: --history must be between 0 and 1000"},
		{[]string{"token"}, "redcast: token: --user is required"},
		{[]string{"token", "--user", "alice"}, "redcast: token: --secret or REDCAST_TOKEN_SECRET is required"},
		{[]string{"bench", "--scenario", "nosuch"}, ""},
	} {
		r := runCLI(t, "", nil, tc.args...)
		name := "redcast " + strings.Join(tc.args, " ")
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if r.code != 1 || r.stdout != "" {
			t.Errorf("%s: %v, want exit 1 and nothing on stdout", name, r)
		} else if tc.want != "" && last != tc.want {
			t.Errorf("%s: last line of stderr %q, want %q", name, last, tc.want)
		} else if !strings.HasPrefix(last, "redcast: ") {
			t.Errorf("%s: last line of stderr %q, want an error", name, last)
		}
	}
}

// TestCLIToken: `redcast token` mints a token that a node with the same
// secret accepts, and that `redcast pub` sends as the user it names.
func TestCLIToken(t *testing.T) {
	secret := strings.Repeat("k", 32)
	node := startNodeProcess(t, "--token-secret", secret, "--allow-anonymous=false")
	r := runCLI(t, "", nil, "token", "--user", "alice", "--secret", secret, "--info", `{"name":"Alice"}`)
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
		t.Fatalf("redcast token: %v, want exit 0 and a JWT", r)
	}
	r = runCLI(t, "", []string{"REDCAST_TOKEN_SECRET=" + secret}, "token", "--user", "alice")
	if r.code != 0 || strings.Count(r.stdout, ".") != 2 {
		t.Errorf("redcast token with REDCAST_TOKEN_SECRET: %v, want a JWT", r)
	}

	ctx := testContext(t)
	c, err := client.Dial(ctx, protocolURL(node.base), client.Options{Token: token})
	if err != nil {
		t.Fatalf("connect with the minted token: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := client.Dial(ctx, protocolURL(node.base), client.Options{}); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Errorf("connect without a token: %v, want error 114", err)
	}
	other, err := exec.Command(redcastBinary(t), "token", "--user", "alice", "--secret", strings.Repeat("x", 32)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Dial(ctx, protocolURL(node.base), client.Options{Token: strings.TrimSpace(string(other))}); !errors.Is(err, protocol.ErrUnauthorized) {
		t.Errorf("connect with a token of another secret: %v, want error 114", err)
	}

	url := protocolURL(node.base)
	if r := runCLI(t, "", []string{"REDCAST_TOKEN=" + token}, "pub", "--url", url, "chat:tok", "hi"); r.code != 0 {
		t.Fatalf("redcast pub with the token: %v", r)
	}
	h, err := c.History(ctx, "chat:tok", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Publications) != 1 || h.Publications[0].From == nil || h.Publications[0].From.User != "alice" ||
		string(h.Publications[0].From.Info) != `{"name":"Alice"}` {
		t.Errorf("history %+v, want one publication from alice with her info", h.Publications)
	}
	r = runCLI(t, "", nil, "pub", "--url", url, "chat:tok", "hi")
	if last := lastLine(r.stderr); r.code != 1 || !strings.HasPrefix(last, "redcast: ") || !strings.Contains(last, "114") {
		t.Errorf("redcast pub without a token: %v, want exit 1 and error 114", r)
	}
}

// TestCLIPub: `redcast pub` prints the acknowledged position of what it
// publishes, from its arguments or from the lines of its standard input.
func TestCLIPub(t *testing.T) {
	node := startNodeProcess(t)
	url := protocolURL(node.base)
	const ch = "chat:clipub"
	var epoch string
	for i, data := range []string{`{"text":"hi"}`, "hello"} {
		r := runCLI(t, "", nil, "pub", "--url", url, ch, data)
		var pos protocol.StreamPosition
		if r.code != 0 || r.stderr != "" || json.Unmarshal([]byte(r.stdout), &pos) != nil ||
			pos.Offset != uint64(i+1) || pos.Epoch == "" || (epoch != "" && pos.Epoch != epoch) {
			t.Fatalf("redcast pub %s %s: %v, want exit 0 and {\"offset\":%d,\"epoch\":…}", ch, data, r, i+1)
		}
		epoch = pos.Epoch
	}
	r := runCLI(t, "three\n\n4\n", []string{"REDCAST_URL=" + url}, "pub", ch, "-")
	want := fmt.Sprintf("{\"offset\":3,\"epoch\":%q}\n{\"offset\":4,\"epoch\":%[1]q}\n", epoch)
	if r.code != 0 || r.stdout != want {
		t.Errorf("redcast pub %s - with REDCAST_URL: %v, want stdout %q", ch, r, want)
	}

	c := dial(t, node.base, "reader")
	h, err := c.History(testContext(t), ch, client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dataOf(h.Publications), []string{`{"text":"hi"}`, `"hello"`, `"three"`, `4`}; !slices.Equal(got, want) {
		t.Errorf("history %q, want %q", got, want)
	}

	r = runCLI(t, "", nil, "pub", "--url", url, "nope:x", "1")
	if last := lastLine(r.stderr); r.code != 1 || !strings.HasPrefix(last, "redcast: publish to nope:x: ") {
		t.Errorf("redcast pub to an unknown namespace: %v, want exit 1 and why", r)
	}
	r = runCLI(t, "", nil, "pub", "--url", "ws://"+testserver.FreeAddr(t)+"/connection/websocket", ch, "1")
	if last := lastLine(r.stderr); r.code != 1 || !strings.Contains(last, "connection refused") {
		t.Errorf("redcast pub to a closed port: %v, want exit 1 and connection refused", r)
	}
}

// TestCLISubAcrossRestart: `redcast sub` prints every publication once, in
// order, as JSON lines, and goes on when the node it is connected to is
// restarted (SIGTERM, then a new process on its address), recovering from
// the Redis history what was published on another node meanwhile.
func TestCLISubAcrossRestart(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	args := []string{"--redis", rs.URL(), "--redis-prefix", "clisub"}
	a, b := startNodeProcess(t, args...), startNodeProcess(t, args...)
	const ch = "chat:clisub"
	pub := dial(t, b.base, "pub")
	publishN(t, pub, ch, 3)

	// --history prints what came before it subscribed, so nothing is
	// missed while it starts.
	sub := startProcess(t, "sub", "--url", protocolURL(a.base), "--history", "100", ch)
	sub.waitLines(t, 3)
	publishN(t, pub, ch, 2) // live

	sub.waitLines(t, 5)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := a.wait(t); err != nil {
		t.Fatalf("node exited with %v", err)
	}
	publishN(t, pub, ch, 3) // while it is down
	startNodeProcess(t, append(args, "--addr", a.addr)...)
	publishN(t, pub, ch, 2)

	lines := sub.waitLines(t, 10)
	var epoch string
	for i, l := range lines {
		var p struct {
			Channel string
			Offset  uint64
			Epoch   string
			Time    int64
			Data    struct{ N int }
			From    *protocol.ClientInfo
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if epoch == "" {
			epoch = p.Epoch
		}
		// publishN numbers each batch from 1.
		n := []int{1, 2, 3, 1, 2, 1, 2, 3, 1, 2}[i]
		if p.Channel != ch || p.Offset != uint64(i+1) || p.Epoch != epoch || p.Time == 0 || p.Data.N != n ||
			p.From == nil || p.From.Client != pub.ID() {
			t.Errorf("line %d: %q, want offset %d of %s with n=%d from %s", i, l, i+1, ch, n, pub.ID())
		}
	}
	if log := strings.Join(sub.logLines(), "\n"); !strings.Contains(log, "reconnecting in") || !strings.Contains(log, "reconnected") {
		t.Errorf("sub did not say it reconnected: %q", log)
	}
	publishN(t, pub, ch, 1)
	sub.waitLines(t, 11)
	if err := sub.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := sub.wait(t); err != nil || len(sub.outLines()) != 11 {
		t.Errorf("sub interrupted: %v after %d lines, want exit 0 after 11; stderr %q", err, len(sub.outLines()), sub.logLines())
	}
}

// waitLines waits until the process printed n lines on its standard
// output and returns them; it fails if it printed more, or exited.
func (p *process) waitLines(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	waitFor(t, fmt.Sprintf("%d lines of output", n), func() bool {
		got = p.outLines()
		if len(got) < n && p.exited() {
			t.Fatalf("the command exited (%v) after %q; stderr %q", p.exitErr, got, p.logLines())
		}
		return len(got) >= n
	})
	if len(got) > n {
		t.Fatalf("got %d lines, want %d: %q", len(got), n, got)
	}
	return got
}

// lastLine returns the last line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
