package testredis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
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
	if _, err := b.Do(t.Context(), "GET", "k"); !rueidis.IsRedisNil(err) {
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
	if _, err := s.Do(t.Context(), "GET", "k"); !rueidis.IsRedisNil(err) {
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

func TestCluster(t *testing.T) {
	c := StartCluster(t, ClusterOptions{Replicas: 1})
	if n := len(c.Nodes()); n != 6 {
		t.Fatalf("%d nodes, want 6", n)
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("%d masters, want 3", len(masters))
	}
	for _, s := range c.Nodes() {
		if strings.HasSuffix(s.Addr(), ":6379") {
			t.Fatalf("node on the default port %s", s.Addr())
		}
	}
	if !strings.HasPrefix(c.URL(), "redis://"+c.Nodes()[0].Addr()+"?addr=") || strings.Count(c.URL(), "addr=") != 5 {
		t.Errorf("URL %q does not name every node", c.URL())
	}
	// A key is served by the master that owns its slot, others redirect.
	var owner *Server
	for _, m := range masters {
		if _, err := m.Do(t.Context(), "SET", "{k}", "v"); err == nil {
			owner = m
		} else if !strings.HasPrefix(err.Error(), "MOVED") {
			t.Fatalf("SET on %s: %v", m.Addr(), err)
		}
	}
	if owner == nil {
		t.Fatal("no master accepted SET {k}")
	}
	promoted := c.Failover(owner)
	if promoted == owner {
		t.Fatal("Failover returned the old master")
	}
	if got := do(t, promoted, "GET", "{k}"); got != "v" {
		t.Fatalf("GET on the promoted replica: %q, want v", got)
	}
	if !slices.Contains(c.Masters(), promoted) || slices.Contains(c.Masters(), owner) {
		t.Fatalf("after failover %s should be master and %s not", promoted.Addr(), owner.Addr())
	}
	// A killed master is replaced by its replica (the old one).
	promoted.Kill()
	c.WaitHealthy()
	if !slices.Contains(c.Masters(), owner) {
		t.Fatalf("%s did not take over after its master was killed", owner.Addr())
	}
	promoted.Restart()
	c.WaitHealthy()

	// A lossy failover: what the master acknowledged while its replica
	// was frozen is gone on the replica that takes over.
	master := c.SlotOwner(slotOfK(t, owner))
	lost := c.LossyFailover(master, func() { do(t, master, "SET", "{k}", "lost") })
	if lost == master || !slices.Contains(c.Masters(), lost) {
		t.Fatalf("after a lossy failover of %s the masters are %v", master.Addr(), c.Masters())
	}
	if got := do(t, lost, "GET", "{k}"); got != "v" {
		t.Fatalf("GET after a lossy failover: %q, want the value from before, v", got)
	}
}

func slotOfK(t *testing.T, s *Server) int {
	t.Helper()
	slot, err := strconv.Atoi(do(t, s, "CLUSTER", "KEYSLOT", "{k}"))
	if err != nil {
		t.Fatal(err)
	}
	return slot
}

func TestSentinel(t *testing.T) {
	st := StartSentinel(t, SentinelOptions{})
	if n := len(st.Sentinels()); n != 2 {
		t.Fatalf("%d sentinels, want 2", n)
	}
	want := "redis://" + st.Sentinels()[0].Addr() + "?addr=" + url.QueryEscape(st.Sentinels()[1].Addr()) + "&master_set=mymaster"
	if st.URL() != want {
		t.Errorf("URL %q, want %q", st.URL(), want)
	}
	old := st.Master()
	do(t, old, "SET", "k", "v")
	waitFor(t, "the replica to have the write", func() error {
		_, err := st.servers[1].Do(t.Context(), "GET", "k")
		return err
	})
	master := st.Failover()
	if master == old || st.Master() != master {
		t.Fatalf("after failover the master is %s (old %s, promoted %s)", st.Master().Addr(), old.Addr(), master.Addr())
	}
	if got := do(t, master, "GET", "k"); got != "v" {
		t.Fatalf("GET on the new master: %q, want v", got)
	}
}

// TestSentinelLossyFailover: what the master acknowledged while its
// replica was frozen is gone on the replica that takes over.
func TestSentinelLossyFailover(t *testing.T) {
	st := StartSentinel(t, SentinelOptions{})
	old := st.Master()
	do(t, old, "SET", "k", "v")
	waitFor(t, "the replica to have the write", func() error {
		_, err := st.servers[1].Do(t.Context(), "GET", "k")
		return err
	})
	master := st.LossyFailover(func() { do(t, old, "SET", "k", "lost") })
	if master == old || st.Master() != master {
		t.Fatalf("after a lossy failover the master is %s (old %s)", st.Master().Addr(), old.Addr())
	}
	if got := do(t, master, "GET", "k"); got != "v" {
		t.Fatalf("GET after a lossy failover: %q, want the value from before, v", got)
	}
}

func TestFreeze(t *testing.T) {
	s := Start(t, Options{})
	s.Freeze()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Do(ctx, "PING"); err == nil {
		t.Fatal("a frozen server answered PING")
	}
	s.Resume()
	if got := do(t, s, "PING"); got != "PONG" {
		t.Fatalf("PING after Resume: %q", got)
	}
	s.Freeze()
	s.Kill() // a frozen server can be killed
}

func TestClusterMigrateSlot(t *testing.T) {
	c := StartCluster(t, ClusterOptions{})
	slot, err := strconv.Atoi(do(t, c.Nodes()[0], "CLUSTER", "KEYSLOT", "{k}"))
	if err != nil {
		t.Fatal(err)
	}
	from := c.SlotOwner(slot)
	for _, key := range []string{"{k}a", "{k}b"} {
		do(t, from, "SET", key, "v")
	}
	to := c.Masters()[0]
	if to == from {
		to = c.Masters()[1]
	}
	c.MigrateSlot(slot, to)
	if got := c.SlotOwner(slot); got != to {
		t.Fatalf("slot %d owned by %s after the migration, want %s", slot, got.Addr(), to.Addr())
	}
	keys, err := to.DoList(t.Context(), "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(slot), "10")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(keys); !slices.Equal(keys, []string{"{k}a", "{k}b"}) {
		t.Fatalf("keys of slot %d on the new owner: %q", slot, keys)
	}
	if _, err := from.Do(t.Context(), "GET", "{k}a"); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
		t.Fatalf("GET on the old owner: %v, want MOVED", err)
	}
}
