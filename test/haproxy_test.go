//go:build linux

package test

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

const (
	// lbBase is its frontend; haproxyStats its statistics page.
	lbBase       = "ws://127.0.0.1:8080"
	haproxyStats = "http://127.0.0.1:8404/stats;csv"
	// drainDelay is the --shutdown-delay of the nodes: longer than the
	// 2.5s the configuration takes to mark a node down, with room for a
	// loaded machine.
	drainDelay = 5 * time.Second
)

// TestHAProxy runs Debian's HAProxy with deploy/haproxy/haproxy.cfg in
// front of three node processes on 127.0.0.1:8081-8083 sharing one Redis,
// in a network namespace of its own (so the fixed ports of the file collide
// with nothing), and shows that
//   - sessions connected through :8080 are spread over the nodes and work;
//   - an event stream through :8080 streams each event as it is published;
//   - when a node is killed (SIGKILL), its sessions reconnect through :8080
//     to the other nodes and recover what they missed;
//   - when a node gets SIGTERM, /readyz answers 503 during --shutdown-delay,
//     HAProxy marks it down before the delay ends and sends it no new
//     connection, and its sessions then reconnect elsewhere and recover.
//
// Every session receives every acknowledged publication exactly once, in
// order.
func TestHAProxy(t *testing.T) {
	if !inNetns(t) {
		return
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy" // Debian's, off the PATH of most users
	}
	if out, err := exec.Command(haproxy, "-c", "-f", haproxyConfig).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s (scripts/test installs Debian's haproxy): %v\n%s", haproxyConfig, err, out)
	}

	rs := testredis.Start(t, testredis.Options{})
	args := []string{"--redis", rs.URL(), "--redis-prefix", "haproxy", "--history-size", "10000",
		"--shutdown-delay", drainDelay.String(), "--shutdown-timeout", (drainDelay + 5*time.Second).String(),
		"--reconnect-spread", "1s"}
	var nodes [3]*nodeProcess
	startNode := func(i int) {
		nodes[i] = startNodeProcess(t, append(args, "--addr", fmt.Sprintf("127.0.0.1:%d", 8081+i), "--node-name", nodeName(i))...)
	}
	for i := range nodes {
		startNode(i)
	}
	cmd := exec.Command(haproxy, "-f", haproxyConfig)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	lb := startCommand(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy printed:\n%s\n%s", strings.Join(lb.outLines(), "\n"), strings.Join(lb.logLines(), "\n"))
		}
	})
	waitServers(t, lb, "UP", "UP", "UP")

	// Six sessions through the balancer, on the channels of both drills.
	const killCh, drainCh = "chat:haproxy-kill", "chat:haproxy-drain"
	subs := make([]*sessionRecorder, 6)
	for i := range subs {
		subs[i] = connectSession(t, lbBase, killCh, drainCh)
	}
	perNode := connectionsPerNode(t, nodes[:])
	for i, n := range perNode {
		if n == 0 {
			t.Fatalf("no session on %s of %v: leastconn should spread them", nodeName(i), perNode)
		}
	}

	t.Run("SSE", func(t *testing.T) { checkSSEThroughLB(t, nodes[0].base) })
	// From here on, clients other than the sessions are on node1, so the
	// connections of node2 and node3 are sessions.
	waitFor(t, "the event stream closed", func() bool {
		return sum(connectionsPerNode(t, nodes[:])) == len(subs)+1
	})

	// kill -9 of a node with sessions; the publisher is on node1.
	victim := 1
	if perNode[victim] == 0 {
		victim = 2
	}
	before := subscribeCounts(subs, killCh)
	pub := startPublisher(t, dial(t, nodes[0].base, "pub"), []string{killCh})
	for _, s := range subs {
		s.waitCount(t, killCh, 20)
	}
	t.Logf("connections per node %v (node1 has the publishers too); killing %s", perNode, nodeName(victim))
	killed := time.Now()
	nodes[victim].kill()
	waitFor(t, "the killed node's sessions resubscribed through the balancer", func() bool {
		return countMoved(subs, killCh, before) == perNode[victim]
	})
	t.Logf("its %d sessions recovered on the other nodes %v after the kill", perNode[victim], time.Since(killed).Round(time.Millisecond))
	pub.waitAcked(t, killCh, len(pub.acked()[killCh])+20)
	checkEvery(t, subs, killCh, pub.stop(t))
	waitServer(t, lb, nodeName(victim), "DOWN")
	startNode(victim)
	waitServers(t, lb, "UP", "UP", "UP")

	// SIGTERM of the node (not node1) with the most sessions.
	perNode = connectionsPerNode(t, nodes[:])
	drained := 1
	if perNode[2] > perNode[1] {
		drained = 2
	}
	before = subscribeCounts(subs, drainCh)
	pub = startPublisher(t, dial(t, nodes[0].base, "pub"), []string{drainCh})
	for _, s := range subs {
		s.waitCount(t, drainCh, 20)
	}
	clients := sum(connectionsPerNode(t, nodes[:]))
	d := nodes[drained]
	t.Logf("connections per node %v (node1 has the publishers too); SIGTERM to %s", perNode, nodeName(drained))
	termed := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz of the draining node answers 503", func() bool {
		status, err := readyz(t.Context(), d.addr)
		return err == nil && status == http.StatusServiceUnavailable
	})
	down := waitServer(t, lb, nodeName(drained), "DOWN")
	t.Logf("HAProxy marked it down %v after the SIGTERM (--shutdown-delay %v)", time.Since(termed).Round(time.Millisecond), drainDelay)
	if status, err := readyz(t.Context(), d.addr); err != nil || status != http.StatusServiceUnavailable || d.exited() {
		t.Fatalf("HAProxy marked the node down only after its --shutdown-delay (%v) ended: /readyz %d, %v", drainDelay, status, err)
	}
	// New clients go to the other nodes.
	for i := range 3 {
		c := dial(t, lbBase, fmt.Sprintf("late%d", i))
		if _, err := c.Subscribe(testContext(t), drainCh, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if after := haproxyServerStats(t)[nodeName(drained)]; after.sessions != down.sessions {
		t.Errorf("HAProxy sent %d new connections to the node it had marked down", after.sessions-down.sessions)
	}
	if err := d.wait(t); err != nil {
		t.Fatalf("the drained node exited with %v; log:\n%s", err, strings.Join(d.logLines(), "\n"))
	}
	waitFor(t, "the drained node's sessions resubscribed through the balancer", func() bool {
		return countMoved(subs, drainCh, before) == perNode[drained]
	})
	t.Logf("it exited and its %d sessions recovered on the other nodes %v after the SIGTERM", perNode[drained], time.Since(termed).Round(time.Millisecond))
	pub.waitAcked(t, drainCh, len(pub.acked()[drainCh])+20)
	checkEvery(t, subs, drainCh, pub.stop(t))
	waitFor(t, "every client of the drained node connected to the other nodes", func() bool {
		return sum(connectionsPerNode(t, nodes[:])) == clients+3 // and the late ones
	})
}

func sum(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

func nodeName(i int) string { return fmt.Sprintf("node%d", i+1) }

// subscribeCounts returns how many times each session subscribed to ch.
func subscribeCounts(subs []*sessionRecorder, ch string) []int {
	out := make([]int, len(subs))
	for i, s := range subs {
		s.mu.Lock()
		out[i] = len(s.subscribed[ch])
		s.mu.Unlock()
	}
	return out
}

// countMoved returns how many sessions subscribed to ch again since they
// had subscribed before times: they reconnected.
func countMoved(subs []*sessionRecorder, ch string, before []int) int {
	n := 0
	for i, c := range subscribeCounts(subs, ch) {
		if c > before[i] {
			n++
		}
	}
	return n
}

// checkEvery fails unless every session received exactly the acknowledged
// publications of ch, in order, and recovered whenever it resubscribed.
func checkEvery(t *testing.T, subs []*sessionRecorder, ch string, acked map[string][]uint64) {
	t.Helper()
	want := acked[ch]
	for i, s := range subs {
		if got := offsets(s.waitCount(t, ch, len(want))); !slices.Equal(got, want) {
			t.Errorf("session %d, %s: offsets %v, want the %d acknowledged %v", i, ch, got, len(want), want)
		}
		s.checkRecovered(t, i)
	}
}

// connectionsPerNode returns redcast_connections of each node; 0 for a
// node that is not running.
func connectionsPerNode(t *testing.T, nodes []*nodeProcess) []int {
	t.Helper()
	out := make([]int, len(nodes))
	for i, n := range nodes {
		if !n.exited() {
			out[i] = int(scrape(t, "http://"+n.addr)["redcast_connections"])
		}
	}
	return out
}

// serverStat is HAProxy's view of one server of the backend.
type serverStat struct {
	status   string // UP, DOWN, "UP 1/2" (going down)…
	sessions int    // connections sent to it so far
}

// haproxyServerStats reads the servers of the backend from the statistics
// page; nil while HAProxy does not answer.
func haproxyServerStats(t *testing.T) map[string]serverStat {
	t.Helper()
	resp, err := http.Get(haproxyStats)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	r := csv.NewReader(bufio.NewReader(resp.Body))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("HAProxy statistics: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[strings.TrimPrefix(name, "# ")] = i
	}
	out := map[string]serverStat{}
	for _, row := range rows[1:] {
		if row[col["pxname"]] != "redcast_nodes" || row[col["svname"]] == "BACKEND" {
			continue
		}
		n, err := strconv.Atoi(row[col["stot"]])
		if err != nil {
			t.Fatalf("HAProxy statistics: stot %q", row[col["stot"]])
		}
		out[row[col["svname"]]] = serverStat{status: row[col["status"]], sessions: n}
	}
	return out
}

// waitServer waits until HAProxy reports the server with status and
// returns its statistics then.
func waitServer(t *testing.T, lb *process, name, status string) serverStat {
	t.Helper()
	var st serverStat
	waitFor(t, fmt.Sprintf("HAProxy reports %s %s", name, status), func() bool {
		if lb.exited() {
			t.Fatalf("haproxy exited: %v\n%s", lb.exitErr, strings.Join(lb.logLines(), "\n"))
		}
		st = haproxyServerStats(t)[name]
		return st.status == status
	})
	return st
}

// waitServers waits until HAProxy reports node1, node2, node3 with these
// statuses.
func waitServers(t *testing.T, lb *process, statuses ...string) {
	t.Helper()
	for i, s := range statuses {
		waitServer(t, lb, nodeName(i), s)
	}
}

// checkSSEThroughLB reads an event stream through the balancer while a
// client of the node at pubBase publishes, one publication at a time: each arrives before the
// next is published, and the fastest within 100ms, so nothing on the way
// holds the stream back (without "option http-no-delay" HAProxy delays
// each event by 200ms).
func checkSSEThroughLB(t *testing.T, pubBase string) {
	const ch = "chat:haproxy-sse"
	ctx := testContext(t)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:8080/connection/sse?channel="+ch, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("GET /connection/sse through HAProxy: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	pubs := make(chan protocol.Publication, 16)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			var m protocol.ServerMessage
			if ok && json.Unmarshal([]byte(data), &m) == nil && m.Push.Type == protocol.PushPublication && m.Pub != nil {
				pubs <- *m.Pub
			}
		}
	}()
	defer func() {
		resp.Body.Close()
		<-read
	}()
	// The node subscribed the stream before it sent the headers.
	c := dial(t, pubBase, "ssepub")
	fastest := time.Hour
	for i := 1; i <= 5; i++ {
		sent := time.Now()
		pos, err := c.Publish(ctx, ch, map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-pubs:
			if p.Offset != pos.Offset {
				t.Fatalf("event stream: publication %d, want %d", p.Offset, pos.Offset)
			}
			took := time.Since(sent)
			fastest = min(fastest, took)
			t.Logf("publication %d reached the event stream through HAProxy after %v", p.Offset, took)
		case <-ctx.Done():
			t.Fatalf("publication %d did not reach the event stream through HAProxy", pos.Offset)
		}
	}
	if fastest > 100*time.Millisecond {
		t.Errorf("the fastest of 5 events took %v from publish to event stream: held back on the way", fastest)
	}
}
