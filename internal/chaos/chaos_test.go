package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redcast/redcast/protocol"
)

// TestShortRun runs "redcast chaos" as CI's short mode: three nodes, every
// node and Redis killed once, and nothing acknowledged may go missing.
func TestShortRun(t *testing.T) {
	t.Parallel()
	runChaos(t, []string{"kill -9 redis", "redis restarted from its AOF"})
}

// TestShortRunCluster is the short mode on a Redis Cluster, with a lossy
// master failover: nothing acknowledged twice, nothing lost unsaid.
func TestShortRunCluster(t *testing.T) {
	t.Parallel()
	runChaos(t, []string{"lossy failover of", "restarted as a replica", "acknowledged twice         0"}, "--cluster")
}

// buildOnce builds the redcast binary once for the tests.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "redcast-chaos-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "redcast")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/redcast/redcast/cmd/redcast").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building redcast: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildOnce(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// runChaos runs a short chaos run with extra flags and checks that it
// passed, killed every node, and did the faults in want.
func runChaos(t *testing.T, want []string, flags ...string) {
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	// Faults run one after the other, a tick of --fault-every apart at the
	// soonest, and none starts within --fault-downtime (1s) of the end of
	// publishing: the Redis fault and three node kills need 3 ticks plus
	// what the Redis fault lasts. A lossy Cluster failover lasts its 1s
	// window, the 2s cluster-node-timeout and an election, and on a loaded
	// 2-core machine (CI) it took over 6s, which left no tick for the
	// third node in 14s. 20s leaves room for 10s.
	args := append([]string{"chaos", "-v", "--duration", "20s", "--fault-every", "3s",
		"--clients", "60", "--channels", "20", "--rate", "200", "--dir", t.TempDir()}, flags...)
	out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
	t.Logf("redcast %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("redcast chaos failed: %v", err)
	}
	want = append(want, "kill -9 node0", "kill -9 node1", "kill -9 node2", "gaps                       0", "result: PASS")
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("the report lacks %q", w)
		}
	}
}

// TestReportFindsViolations: the checker counts duplicates, gaps,
// reorders and explicit losses, so a passing run means something.
func TestReportFindsViolations(t *testing.T) {
	pos := func(o uint64) protocol.StreamPosition { return protocol.StreamPosition{Offset: o, Epoch: "E"} }
	rec := func(recoveryErr, outOfOrder int, seen ...uint64) *received {
		r := &received{seen: map[protocol.StreamPosition]int{}, recoveryErr: recoveryErr, outOfOrder: outOfOrder}
		for _, o := range seen {
			r.seen[pos(o)]++
		}
		return r
	}
	w := &world{acked: map[string][]protocol.StreamPosition{"a": {pos(1), pos(2), pos(3), pos(3)}}, failed: 1}
	w.subs = []*subscriber{
		{ch: map[string]*received{"a": rec(0, 0, 1, 2, 3)}},    // all good
		{ch: map[string]*received{"a": rec(0, 0, 1, 1, 2, 3)}}, // a duplicate
		{ch: map[string]*received{"a": rec(0, 1, 1, 3)}},       // a gap, a reorder
		{ch: map[string]*received{"a": rec(1, 0, 3, 4)}},       // told; 4 was never acked
	}
	rep := w.report()
	want := Report{Acked: 4, Failed: 1, Expected: 16, Delivered: 13, Duplicates: 1, Gaps: 1, OutOfOrder: 1, AckedTwice: 1, RecoveryFailures: 1, LostExplicitly: 2, Unowed: 1}
	if rep.Acked != want.Acked || rep.Failed != want.Failed || rep.Expected != want.Expected || rep.Delivered != want.Delivered ||
		rep.Duplicates != want.Duplicates || rep.Gaps != want.Gaps || rep.OutOfOrder != want.OutOfOrder || rep.AckedTwice != want.AckedTwice ||
		rep.RecoveryFailures != want.RecoveryFailures || rep.LostExplicitly != want.LostExplicitly || rep.Unowed != want.Unowed {
		t.Fatalf("report %+v,\nwant   %+v", *rep, want)
	}
	if rep.OK() {
		t.Fatal("a report with violations is OK")
	}
	w.subs = w.subs[:1]
	w.acked["a"] = w.acked["a"][:3]
	if rep := w.report(); !rep.OK() {
		t.Fatalf("a clean report is not OK: %+v", *rep)
	}
}
