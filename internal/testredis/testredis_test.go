package testredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func do(t *testing.T, s *Server, args ...string) string {
	t.Helper()
	reply, err := s.Do(t.Context(), args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return reply
}

func TestStart(t *testing.T) {
	s := Start(t, Options{})
	if got := do(t, s, "PING"); got != "PONG" {
		t.Fatalf("PING: %q", got)
	}
	if strings.HasSuffix(s.Addr(), ":6379") {
		t.Fatalf("server on the default port %s", s.Addr())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Errorf("URL %q, want %q", s.URL(), want)
	}
	info := do(t, s, "INFO", "persistence")
	if !strings.Contains(info, "aof_enabled:0") {
		t.Errorf("persistence without AppendOnly:\n%s", info)
	}
	if _, err := s.Do(t.Context(), "NOSUCHCOMMAND"); err == nil {
		t.Error("an unknown command did not fail")
	}
}

func TestServersAreIndependent(t *testing.T) {
	a, b := Start(t, Options{}), Start(t, Options{})
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers on %s", a.Addr())
	}
	do(t, a, "SET", "k", "a")
	if _, err := b.Do(t.Context(), "GET", "k"); err == nil || err.Error() != "nil reply" {
		t.Fatalf("GET on the other server: %v, want a nil reply", err)
	}
}

func TestKillAndRestartWithoutPersistence(t *testing.T) {
	s := Start(t, Options{})
	addr := s.Addr()
	do(t, s, "SET", "k", "v")
	s.Kill()
	if _, err := s.Do(t.Context(), "PING"); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}
	s.Kill() // a second Kill does nothing
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
	}
	if _, err := s.Do(t.Context(), "GET", "k"); err == nil || err.Error() != "nil reply" {
		t.Fatalf("GET after restart without persistence: %v, want a nil reply", err)
	}
}

func TestRestartWithAppendOnly(t *testing.T) {
	s := Start(t, Options{AppendOnly: true})
	do(t, s, "SET", "k", "v")
	s.Kill()
	s.Restart()
	if got := do(t, s, "GET", "k"); got != "v" {
		t.Fatalf("GET after restart with AOF: %q, want v", got)
	}
	// Restart also works on a running server.
	do(t, s, "SET", "k", "w")
	s.Restart()
	if got := do(t, s, "GET", "k"); got != "w" {
		t.Fatalf("GET after second restart: %q, want w", got)
	}
}

func TestExtraArgs(t *testing.T) {
	s := Start(t, Options{Args: []string{"--maxmemory", "10mb"}})
	if info := do(t, s, "INFO", "memory"); !strings.Contains(info, "maxmemory:10485760") {
		t.Errorf("maxmemory not applied:\n%s", info)
	}
}

func TestCleanupKills(t *testing.T) {
	var pid int
	t.Run("inner", func(t *testing.T) {
		s := Start(t, Options{})
		pid = s.cmd.Process.Pid
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("redis-server %d still exists after its test ended (kill -0: %v)", pid, err)
	}
}

// fatalTB records Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

type fatalCalled struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalCalled{})
}

func TestMissingBinaryFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tb := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatalCalled); !ok {
					panic(r)
				}
			}
		}()
		Start(tb, Options{})
	}()
	if !strings.Contains(tb.msg, "redis-server not found") {
		t.Fatalf("Start without redis-server: %q, want a failure that says so", tb.msg)
	}
}

func TestDoHonoursContext(t *testing.T) {
	s := Start(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Do(ctx, "PING"); err == nil {
		t.Fatal("Do with a canceled context succeeded")
	}
}
