package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

var (
	buildOnce sync.Once
	binaryDir string // removed by TestMain
	binary    string
	buildErr  error
)

// binaryEnv names a redcast binary already built, for a test binary that
// a test runs again (in a network namespace of its own: netns_linux_test.go).
const binaryEnv = "REDCAST_TEST_BINARY"

// redcastBinary builds cmd/redcast once per test run.
func redcastBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv(binaryEnv); b != "" {
			binary = b // built by the test that started this one
			return
		}
		dir, err := os.MkdirTemp("", "redcast-bin")
		if err != nil {
			buildErr = err
			return
		}
		binaryDir, binary = dir, filepath.Join(dir, "redcast")
		out, err := exec.Command("go", "build", "-o", binary, "../cmd/redcast").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// process is the redcast binary running as a child process, with the lines
// it printed so far.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	// exitErr is what cmd.Wait returned; read it once done is closed.
	exitErr error

	mu             sync.Mutex
	stdout, stderr []string
}

// startProcess runs the redcast binary with args, in an environment without
// REDCAST_ variables. It is killed when the test ends.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(redcastBinary(t), args...)
	cmd.Env = cliEnv()
	return startCommand(t, cmd)
}

// startCommand starts cmd, collecting the lines it prints. It is killed
// when the test ends.
func startCommand(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	var reading sync.WaitGroup
	reading.Go(func() { p.collect(stdout, &p.stdout) })
	reading.Go(func() { p.collect(stderr, &p.stderr) })
	go func() {
		reading.Wait() // Wait closes the pipes: read them to the end first
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// collect appends the lines of r to *lines until r ends.
func (p *process) collect(r io.Reader, lines *[]string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		*lines = append(*lines, sc.Text())
		p.mu.Unlock()
	}
}

// outLines returns the lines of the standard output so far.
func (p *process) outLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stdout)
}

// logLines returns the lines of the standard error so far.
func (p *process) logLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stderr)
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns what Wait returned: nil
// for exit status 0. It fails the test if that takes longer than
// waitTimeout.
func (p *process) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(waitTimeout):
		t.Fatal("the process did not exit")
		return nil
	}
}

// cliEnv is the test's environment without REDCAST_ variables, which
// would change what the commands do.
func cliEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "REDCAST_") })
}

// nodeProcess is a redcast node running as its own process.
type nodeProcess struct {
	*process
	addr string // host:port it serves on
	base string // "ws://" + addr
}

var addrRE = regexp.MustCompile(`"redcast serving" addr=(\S+)`)

// startNodeProcess runs the redcast binary with args on a random port (a
// later --addr in args wins) and waits until it serves. The process is
// killed when the test ends.
func startNodeProcess(t *testing.T, args ...string) *nodeProcess {
	t.Helper()
	p := &nodeProcess{process: startProcess(t, append([]string{"--addr", "127.0.0.1:0"}, args...)...)}
	waitFor(t, "redcast serving", func() bool {
		for _, l := range p.logLines() {
			if m := addrRE.FindStringSubmatch(l); m != nil {
				p.addr, p.base = m[1], "ws://"+m[1]
				return true
			}
		}
		if p.exited() {
			t.Fatalf("redcast exited before serving (%v):\n%s", p.exitErr, strings.Join(p.logLines(), "\n"))
		}
		return false
	})
	return p
}

// kill stops the node with SIGKILL: no disconnect push, no leave, no
// presence cleanup.
func (p *nodeProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// TestRedisNodeKilled kills a node process mid-stream: its client reconnects
// to another node and recovers every publication exactly once in order, and
// the killed node's client leaves presence within the presence TTL.
func TestRedisNodeKilled(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	args := []string{"--redis", rs.URL(), "--redis-prefix", "kill", "--presence-ttl", "2s"}
	nodes := []*nodeProcess{startNodeProcess(t, args...), startNodeProcess(t, args...), startNodeProcess(t, args...)}
	ctx := testContext(t)
	const ch = "chat:killed"

	victim := dial(t, nodes[0].base, "victim")
	if _, err := victim.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	watcher := dial(t, nodes[1].base, "watcher")
	if _, err := watcher.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, watcher, ch, "victim", "watcher")

	// A publisher on the third node publishes throughout, paced so that
	// the kill lands mid-stream.
	const total = 300
	pub := dial(t, nodes[2].base, "pub")
	published := make(chan error, 1)
	go func() {
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for i := range total {
			<-pace.C
			if _, err := pub.Publish(ctx, ch, map[string]int{"n": i}); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()

	victim.waitPubs(t, ch, 50)
	nodes[0].kill()
	select {
	case <-published:
		t.Fatal("the publisher finished before the kill; the test wants a kill mid-stream")
	default:
	}
	waitClosed(t, victim)
	got := victim.pubs(ch)
	last := got[len(got)-1]
	epoch := watcher.pubsEpoch(t, ctx, ch)

	again := dial(t, nodes[1].base, "victim")
	res, err := again.Subscribe(ctx, ch, client.SubscribeOptions{Since: &protocol.StreamPosition{Offset: last.Offset, Epoch: epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered {
		t.Fatal("recovery on another node failed")
	}
	got = append(got, res.Publications...)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	live := again.waitPubs(t, ch, total-len(got))
	got = append(got, live...)
	checkOffsets(t, "before the kill, recovered and live", got, 1)
	if len(got) != total {
		t.Fatalf("got %d publications, want %d", len(got), total)
	}

	// The killed node's entry expires (presence TTL 2s); the reconnected
	// client is listed under its new connection.
	waitPresence(t, watcher, ch, "victim", "watcher")
	waitFor(t, "the killed node's client leaves presence", func() bool {
		cl, err := watcher.Presence(ctx, ch)
		if err != nil {
			return false
		}
		for _, ci := range cl {
			if ci.Client == victim.ID() {
				return false
			}
		}
		return len(cl) == 2
	})
}

// pubsEpoch reads the channel's current epoch through history.
func (c *conn) pubsEpoch(t *testing.T, ctx context.Context, ch string) string {
	t.Helper()
	h, err := c.History(ctx, ch, client.HistoryOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return h.Epoch
}
