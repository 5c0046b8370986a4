//go:build linux

package test

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	// lbBase is the balancers' frontend, in both shipped configurations;
	// haproxyStats is HAProxy's statistics page.
	lbBase       = "ws://127.0.0.1:8080"
	haproxyStats = "http://127.0.0.1:8404/stats;csv"
	// drainDelay is the --shutdown-delay of the nodes: longer than the
	// 2.5s HAProxy takes to mark a node down, with room for a loaded
	// machine.
	drainDelay = 5 * time.Second
)

// balancer is a load balancer under test, in front of the nodes of
// runBalancerDrills.
type balancer struct {
	// start starts it; it may not route yet.
	start func(t *testing.T) *process
	// routes waits until it routes new connections to node i.
	routes func(t *testing.T, lb *process, i int)
	// drained, when the balancer can tell, waits until it has taken node
	// i out of rotation and returns a function that reports how many
	// connections it sent to the node since.
	drained func(t *testing.T, lb *process, i int) (sentSince func() int)
}

// TestHAProxy runs the drills of runBalancerDrills with Debian's HAProxy
// and deploy/haproxy/haproxy.cfg as shipped. HAProxy polls /readyz: it
// takes a draining node out of rotation before the node's --shutdown-delay
// ends, and sends it no connection from then on.
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
	runBalancerDrills(t, balancer{
		start: func(t *testing.T) *process {
			cmd := exec.Command(haproxy, "-f", haproxyConfig)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			return startCommand(t, cmd)
		},
		routes: func(t *testing.T, lb *process, i int) { waitServer(t, lb, nodeName(i), "UP") },
		drained: func(t *testing.T, lb *process, i int) func() int {
			down := waitServer(t, lb, nodeName(i), "DOWN")
			return func() int { return haproxyServerStats(t)[nodeName(i)].sessions - down.sessions }
		},
	})
}

// TestNginx runs the drills of runBalancerDrills with Debian's nginx and
// deploy/nginx/redcast.conf as shipped, included in a minimal nginx.conf
// whose process id, logs and temporary files stay in the test's directory.
// nginx does not poll /readyz: a draining node's clients go elsewhere
// because the node answers new ones 503 and nginx passes them on.
func TestNginx(t *testing.T) {
	if !inNetns(t) {
		return
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
	}
	site, err := filepath.Abs(nginxSite)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	// One process (no master and workers): SIGKILL stops all of nginx.
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	include %[2]s;
}
`, dir, site)
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-e", "stderr", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t with %s (scripts/test installs Debian's nginx): %v\n%s", nginxSite, err, out)
	}
	runBalancerDrills(t, balancer{
		start: func(t *testing.T) *process {
			cmd := exec.Command(nginx, "-e", "stderr", "-c", conf)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			return startCommand(t, cmd)
		},
		// nginx has no view of its own to ask: its port answers once it
		// serves, and a node it set aside comes back after fail_timeout.
		routes: func(t *testing.T, lb *process, _ int) {
			waitFor(t, "nginx serves", func() bool {
				if lb.exited() {
					t.Fatalf("nginx exited: %v\n%s", lb.exitErr, strings.Join(lb.logLines(), "\n"))
				}
				status, err := readyz(t.Context(), "127.0.0.1:8080")
				return err == nil && status == http.StatusOK
			})
		},
	})
}

// runBalancerDrills starts Redis and three node processes on
// 127.0.0.1:8081-8083, then the balancer b on :8080 (the ports of the
// shipped configurations: the caller runs in a network namespace of its
// own, so they collide with nothing), and shows that
//   - sessions connected through :8080 are spread over the nodes and work;
//   - when a node is killed (SIGKILL), its sessions reconnect through :8080
//     to the other nodes and recover what they missed;
//   - when a node gets SIGTERM, /readyz answers 503 during --shutdown-delay,
//     it registers no new connection (the balancer sends none, or the node
//     turns them away to try again), its sessions then reconnect elsewhere
//     and recover, and it exits 0;
//   - an event stream through :8080 streams each event as it is published.
//
// Every session receives every acknowledged publication exactly once, in
// order.
func runBalancerDrills(t *testing.T, b balancer) {
	r := startLBRig(t, b)
	r.killDrill(t)
	r.drainDrill(t)
	// Last, so that the stream stays out of the connection counts.
	t.Run("SSE", func(t *testing.T) { checkSSEThroughLB(t, r.nodes[0].base) })
}

// The channels of the drills, to which every session subscribes.
const killCh, drainCh = "chat:lb-kill", "chat:lb-drain"

// lbRig is Redis, three node processes and a balancer in front of them,
// with six sessions connected through the balancer. Other clients connect
// to node1 directly, so the connections of node2 and node3 are sessions.
type lbRig struct {
	b     balancer
	lb    *process
	args  []string // of every node
	nodes [3]*nodeProcess
	subs  []*sessionRecorder
}

// startLBRig starts the rig and checks that the sessions are spread over
// the three nodes.
func startLBRig(t *testing.T, b balancer) *lbRig {
	rs := testredis.Start(t, testredis.Options{})
	r := &lbRig{b: b, args: []string{"--redis", rs.URL(), "--redis-prefix", "lb", "--history-size", "10000",
		"--shutdown-delay", drainDelay.String(), "--shutdown-timeout", (drainDelay + 5*time.Second).String(),
		"--reconnect-spread", "1s"}}
	for i := range r.nodes {
		r.startNode(t, i)
	}
	r.lb = b.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the balancer printed:\n%s\n%s", strings.Join(r.lb.outLines(), "\n"), strings.Join(r.lb.logLines(), "\n"))
		}
	})
	for i := range r.nodes {
		b.routes(t, r.lb, i)
	}
	r.subs = make([]*sessionRecorder, 6)
	for i := range r.subs {
		r.subs[i] = connectSession(t, lbBase, killCh, drainCh)
	}
	for i, n := range connectionsPerNode(t, r.nodes[:]) {
		if n == 0 {
			t.Fatalf("no session on %s: least connections should spread them", nodeName(i))
		}
	}
	return r
}

// startNode starts node i (again) on its port.
func (r *lbRig) startNode(t *testing.T, i int) {
	r.nodes[i] = startNodeProcess(t, append(r.args, "--addr", fmt.Sprintf("127.0.0.1:%d", 8081+i), "--node-name", nodeName(i))...)
}

// killDrill kills (SIGKILL) a node with sessions, not node1, while node1
// publishes: its sessions reconnect through the balancer and recover. The
// node is started again at the end.
func (r *lbRig) killDrill(t *testing.T) {
	perNode := connectionsPerNode(t, r.nodes[:])
	victim := 1
	if perNode[victim] == 0 {
		victim = 2
	}
	before := subscribeCounts(r.subs, killCh)
	pub := startPublisher(t, dial(t, r.nodes[0].base, "pub"), []string{killCh})
	for _, s := range r.subs {
		s.waitCount(t, killCh, 20)
	}
	t.Logf("sessions per node %v; killing %s", perNode, nodeName(victim))
	killed := time.Now()
	r.nodes[victim].kill()
	waitFor(t, "the killed node's sessions resubscribed through the balancer", func() bool {
		return countMoved(r.subs, killCh, before) == perNode[victim]
	})
	t.Logf("its %d sessions recovered on the other nodes %v after the kill", perNode[victim], time.Since(killed).Round(time.Millisecond))
	pub.waitAcked(t, killCh, len(pub.acked()[killCh])+20)
	checkEvery(t, r.subs, killCh, pub.stop(t))
	r.startNode(t, victim)
	r.b.routes(t, r.lb, victim)
}

// drainDrill stops (SIGTERM) the node with the most sessions, not node1,
// while node1 publishes: /readyz answers 503 during --shutdown-delay, the
// node registers no new client (with HAProxy: gets none), its sessions
// then reconnect elsewhere and recover, and it exits 0.
func (r *lbRig) drainDrill(t *testing.T) {
	perNode := connectionsPerNode(t, r.nodes[:])
	i := 1
	if perNode[2] > perNode[1] {
		i = 2
	}
	d := r.nodes[i]
	before := subscribeCounts(r.subs, drainCh)
	pub := startPublisher(t, dial(t, r.nodes[0].base, "pub"), []string{drainCh})
	for _, s := range r.subs {
		s.waitCount(t, drainCh, 20)
	}
	clients := sum(connectionsPerNode(t, r.nodes[:]))
	opened := scrape(t, "http://"+d.addr)["redcast_connections_opened_total"]
	t.Logf("connections per node %v (node1 has the publishers too); SIGTERM to %s", perNode, nodeName(i))
	termed := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz of the draining node answers 503", func() bool {
		status, err := readyz(t.Context(), d.addr)
		return err == nil && status == http.StatusServiceUnavailable
	})
	var sentSince func() int
	if r.b.drained != nil {
		sentSince = r.b.drained(t, r.lb, i)
		t.Logf("the balancer took it out of rotation %v after the SIGTERM (--shutdown-delay %v)", time.Since(termed).Round(time.Millisecond), drainDelay)
		if status, err := readyz(t.Context(), d.addr); err != nil || status != http.StatusServiceUnavailable || d.exited() {
			t.Fatalf("the balancer took the node out only after its --shutdown-delay (%v) ended: /readyz %d, %v", drainDelay, status, err)
		}
	}
	// New clients, while the node still drains, connect to the other
	// nodes: the balancer sends them there, or the draining node turns
	// them away (3001) and they try again.
	turnedAway := 0
	for j := range 3 {
		turnedAway += dialRetrying(t, lbBase, fmt.Sprintf("late%d", j))
	}
	if sentSince != nil {
		// Nothing reached the node, which is still draining.
		if n := sentSince(); n != 0 || turnedAway != 0 {
			t.Errorf("the balancer sent %d new connections to the node it had taken out (%d turned away)", n, turnedAway)
		}
		if n := scrape(t, "http://"+d.addr)["redcast_connections_opened_total"] - opened; n != 0 || d.exited() {
			t.Errorf("the draining node took %v new connections (exited: %v)", n, d.exited())
		}
	} else {
		t.Logf("the draining node turned %d attempts of the 3 new clients away", turnedAway)
	}
	if err := d.wait(t); err != nil {
		t.Fatalf("the drained node exited with %v; log:\n%s", err, strings.Join(d.logLines(), "\n"))
	}
	waitFor(t, "the drained node's sessions resubscribed through the balancer", func() bool {
		return countMoved(r.subs, drainCh, before) == perNode[i]
	})
	t.Logf("it exited and its %d sessions recovered on the other nodes %v after the SIGTERM", perNode[i], time.Since(termed).Round(time.Millisecond))
	pub.waitAcked(t, drainCh, len(pub.acked()[drainCh])+20)
	checkEvery(t, r.subs, drainCh, pub.stop(t))
	waitFor(t, "every client of the drained node connected to the other nodes", func() bool {
		return sum(connectionsPerNode(t, r.nodes[:])) == clients+3 // and the late ones
	})
}

// dialRetrying connects a client named name to base, trying again every
// 50ms, as clients do, while a draining node turns it away with 3001. It
// returns how many times it was turned away. The client is closed when
// the test ends.
func dialRetrying(t *testing.T, base, name string) (turnedAway int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := client.Dial(testContext(t), protocolURL(base), client.Options{Name: name})
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return turnedAway
		}
		var d protocol.Disconnect
		if !errors.As(err, &d) || d.Code != protocol.DisconnectShutdown.Code || time.Now().After(deadline) {
			t.Fatalf("dial %s: %v (turned away %d times before)", name, err, turnedAway)
		}
		turnedAway++
		time.Sleep(50 * time.Millisecond)
	}
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

// checkSSEThroughLB reads an event stream through the balancer while a
// client of the node at pubBase publishes, one publication at a time: each arrives before the
// next is published, and the fastest within 100ms, so nothing on the way
// holds the stream back (without "option http-no-delay" HAProxy delays
// each event by 200ms; nginx buffers without "proxy_buffering off").
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
		t.Fatalf("GET /connection/sse through the balancer: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
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
			t.Logf("publication %d reached the event stream through the balancer after %v", p.Offset, took)
		case <-ctx.Done():
			t.Fatalf("publication %d did not reach the event stream through the balancer", pos.Offset)
		}
	}
	if fastest > 100*time.Millisecond {
		t.Errorf("the fastest of 5 events took %v from publish to event stream: held back on the way", fastest)
	}
}
