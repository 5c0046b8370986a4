// Package testredis starts real redis-server processes for tests.
//
// Each Server listens on a free loopback port chosen by the kernel, keeps
// its files in its own temporary directory, and is killed when the test
// that started it ends, so tests never share a keyspace and never depend on
// a Redis that happens to run on the machine (such as one on :6379).
//
//	srv := testredis.Start(t, testredis.Options{})
//	b, err := redis.New(ctx, redis.Config{URL: srv.URL()})
//
// A missing redis-server binary fails the test with a message saying how
// to install it: tests that need Redis are never skipped silently.
//
// StartCluster starts a Redis Cluster (3 masters, optionally with
// replicas, created with redis-cli --cluster create) and StartSentinel a
// master, replicas and sentinels; both offer failovers for tests: graceful
// ones, and lossy ones in which the new master lacks the writes the old
// one acknowledged last (built on Server.Freeze and DropReplicas).
//
// Readiness is detected by polling PING with a deadline, never by sleeping
// a fixed time.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/internal/rediscmd"
)

const (
	// startTimeout bounds how long Start and Restart wait for the server to
	// answer PING (loading a persisted dataset included).
	startTimeout = 15 * time.Second
	// pollInterval is how often readiness is checked.
	pollInterval = 10 * time.Millisecond
	// startAttempts is how often Start tries another port when the chosen
	// one was taken between picking it and the server binding it.
	startAttempts = 5
)

// Options configure a Server. The zero value starts a server without any
// persistence.
type Options struct {
	// AppendOnly turns on AOF persistence with appendfsync always, so that
	// every acknowledged write survives Kill and Restart.
	AppendOnly bool
	// Args are extra redis-server arguments, such as "--maxmemory", "10mb".
	Args []string
}

// Server is one redis-server process. Its methods are safe for concurrent
// use; Kill and Restart must not be called concurrently with each other.
type Server struct {
	t    testing.TB
	opts Options
	bin  string
	dir  string
	port int
	mode mode // plain, cluster node or sentinel
	// busPort is a cluster node's cluster bus port (not port+10000, which
	// may be above 65535 or taken).
	busPort int

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while killed
	done chan struct{} // closed when cmd's process has been waited for
}

// Start starts a redis-server for the test and registers its cleanup. It
// fails the test if redis-server is not on PATH or does not become ready.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	return startMode(t, opts, modePlain)
}

// mode is the kind of process a Server runs.
type mode int

const (
	modePlain    mode = iota
	modeCluster       // a node of a Redis Cluster (see StartCluster)
	modeSentinel      // a Redis Sentinel (see StartSentinel)
)

// startMode starts a server of the given mode on free ports.
func startMode(t testing.TB, opts Options, m mode) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testredis: redis-server not found on PATH (install it, e.g. apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, opts: opts, bin: bin, dir: t.TempDir(), mode: m}
	t.Cleanup(s.stop)
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err == nil && m == modeCluster {
			s.busPort, err = freePort()
		}
		if err != nil {
			t.Fatalf("testredis: %v", err)
		}
		s.port = port
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == startAttempts {
			t.Fatalf("testredis: %v", err)
		}
	}
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL of the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory (where its log and AOF files are).
func (s *Server) Dir() string { return s.dir }

// Kill stops the server with SIGKILL, as a crash would, and waits for the
// process to be gone. Killing a killed server does nothing.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// Restart kills the server if it runs, then starts it again on the same
// port and directory, and waits until it answers PING. With AppendOnly, the
// dataset survives.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("testredis: restart: %v", err)
	}
}

// Freeze stops the process (SIGSTOP), as a stalled machine would: its
// sockets stay open and it answers nothing until Resume. Kill and the test
// cleanup still kill a frozen server.
func (s *Server) Freeze() {
	s.t.Helper()
	s.signal("freeze", freezeSignal)
}

// Resume continues a frozen process (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	s.signal("resume", resumeSignal)
}

func (s *Server) signal(what string, sig os.Signal) {
	s.t.Helper()
	if sig == nil {
		s.t.Fatalf("testredis: cannot %s a process on this system", what)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("testredis: cannot %s %s: it is not running", what, s.Addr())
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("testredis: %s %s: %v", what, s.Addr(), err)
	}
}

// DropReplicas makes a master close its connections to its replicas
// (CLIENT KILL TYPE replica), so that what is written to it next reaches no
// replica until they connect again. It returns how many it closed.
func (s *Server) DropReplicas() int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.Do(ctx, "CLIENT", "KILL", "TYPE", "replica")
	if err != nil {
		s.t.Fatalf("testredis: CLIENT KILL TYPE replica on %s: %v", s.Addr(), err)
	}
	count, _ := strconv.Atoi(n)
	return count
}

// Do sends one command and returns the reply when it is a simple string, a
// bulk string or an integer (as its decimal text). A Redis error reply is
// returned as an error, a nil reply as rueidis.Nil. Arrays are not
// supported: use DoList for a flat array, a real client for anything else.
// Do is meant for checks and setup in tests (CONFIG SET, INFO): each call
// has a connection of its own and fails, within ctx, on a killed or frozen
// server (see package rediscmd).
func (s *Server) Do(ctx context.Context, args ...string) (string, error) {
	return rediscmd.Do(ctx, s.Addr(), args...)
}

// DoList sends one command whose reply is an array of strings or integers,
// such as CLUSTER GETKEYSINSLOT or PUBSUB SHARDCHANNELS, and returns its
// elements (a nil element as ""). A Redis error reply is returned as an
// error.
func (s *Server) DoList(ctx context.Context, args ...string) ([]string, error) {
	return rediscmd.DoList(ctx, s.Addr(), args...)
}

// start starts the process on s.port and waits until it is ready.
func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", "redis.log",
		"--daemonize", "no",
	}
	switch s.mode {
	case modeSentinel:
		// A sentinel needs a config file it can rewrite; it keeps what
		// it learned there across Restart.
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil {
			if err := os.WriteFile(conf, nil, 0o600); err != nil {
				return err
			}
		}
		args = append([]string{conf, "--sentinel"}, args...)
	case modeCluster:
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(s.busPort),
			"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout/time.Millisecond)))
	}
	if s.mode != modeSentinel {
		// Replicas sync at once rather than after the default 5s wait
		// for more replicas to share one transfer.
		args = append(args, "--save", "", "--repl-diskless-sync-delay", "0")
		if s.opts.AppendOnly {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		s.Kill()
		return fmt.Errorf("%w\nlast lines of %s:\n%s", err, filepath.Join(s.dir, "redis.log"), s.logTail())
	}
	return nil
}

// waitReady polls PING until it succeeds, the process exits, or the
// deadline passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited before it was ready", s.port)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		reply, err := s.Do(ctx, "PING")
		cancel()
		if err == nil && reply == "PONG" {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d not ready after %v: %v", s.port, startTimeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// running reports whether the process runs (was not killed).
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// stop is the test cleanup: it kills the process so none outlives the test.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// logTail returns the last lines of the server's log, for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
