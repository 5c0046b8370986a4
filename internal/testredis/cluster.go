package testredis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// clusterNodeTimeout is the cluster-node-timeout of cluster nodes: how
	// long a node may be unreachable before its replica takes over. Short,
	// so that tests of automatic failover are quick.
	clusterNodeTimeout = 1500 * time.Millisecond
	// clusterTimeout bounds how long a Cluster waits to become healthy
	// (after creation, a failover or a restart).
	clusterTimeout = 30 * time.Second
)

// ClusterOptions configure a Cluster. Zero values mean the defaults.
type ClusterOptions struct {
	// Masters is how many masters share the 16384 slots; at least 3
	// (what redis-cli --cluster create accepts). Default 3.
	Masters int
	// Replicas is how many replicas each master has. Default 0; a test of
	// failover needs 1.
	Replicas int
	// Node applies to every node (AppendOnly, extra Args).
	Node Options
}

// Cluster is a Redis Cluster of redis-server processes on free loopback
// ports, created with redis-cli --cluster create. Every node is killed
// when the test ends. Nodes' Kill and Restart work as for a single Server;
// after either, WaitHealthy waits until the cluster has recovered.
type Cluster struct {
	t     testing.TB
	opts  ClusterOptions
	nodes []*Server
}

// StartCluster starts the nodes, creates the cluster and waits until it is
// healthy (see WaitHealthy). It fails the test if redis-server or
// redis-cli is missing (both come with Debian's redis-server package).
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.Masters < 3 || opts.Replicas < 0 {
		t.Fatalf("testredis: a cluster needs at least 3 masters and no negative replica count, not %d and %d", opts.Masters, opts.Replicas)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("testredis: redis-cli not found on PATH (install it, e.g. apt-get install redis-server, which brings redis-tools): %v", err)
	}
	c := &Cluster{t: t, opts: opts}
	args := []string{"--cluster", "create"}
	for range opts.Masters * (1 + opts.Replicas) {
		s := startMode(t, opts.Node, modeCluster)
		c.nodes = append(c.nodes, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testredis: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.WaitHealthy()
	return c
}

// Nodes returns every node, masters and replicas, in the order they were
// started (roles change with failovers: see Masters).
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// URL returns a redis:// URL naming every node as a seed, in the form
// rueidis reads: redis://host1:port1?addr=host2:port2&addr=...
func (c *Cluster) URL() string {
	q := url.Values{}
	for _, s := range c.nodes[1:] {
		q.Add("addr", s.Addr())
	}
	return "redis://" + c.nodes[0].Addr() + "?" + q.Encode()
}

// Masters returns the running nodes that are masters owning slots, as they
// see themselves.
func (c *Cluster) Masters() []*Server {
	c.t.Helper()
	var out []*Server
	for _, s := range c.running() {
		if me, err := s.clusterSelf(); err == nil && me.master() && len(me.slots) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Replica returns a running replica of master, failing the test if it has
// none.
func (c *Cluster) Replica(master *Server) *Server {
	c.t.Helper()
	id := c.nodeID(master)
	for _, s := range c.running() {
		if me, err := s.clusterSelf(); err == nil && !me.master() && me.masterID == id {
			return s
		}
	}
	c.t.Fatalf("testredis: master %s has no running replica", master.Addr())
	return nil
}

// Failover makes a replica of master take its place with CLUSTER FAILOVER
// (a manual failover: no write is lost), waits until the cluster is
// healthy with the replica as master, and returns it. The old master
// becomes its replica.
func (c *Cluster) Failover(master *Server) *Server {
	c.t.Helper()
	replica := c.Replica(master)
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if _, err := replica.Do(ctx, "CLUSTER", "FAILOVER"); err != nil {
		c.t.Fatalf("testredis: CLUSTER FAILOVER on %s: %v", replica.Addr(), err)
	}
	c.waitFor("replica "+replica.Addr()+" to become master", func() error {
		me, err := replica.clusterSelf()
		if err != nil {
			return err
		}
		if !me.master() || len(me.slots) == 0 {
			return fmt.Errorf("%s is still %s", replica.Addr(), me.flags)
		}
		return nil
	})
	c.WaitHealthy()
	return replica
}

// LossyFailover makes master's replicas take over without the writes of
// its last moments, as asynchronous replication allows: the replicas are
// frozen (SIGSTOP) and master drops its links to them, then during runs
// (what master acknowledges meanwhile reaches no replica), then master
// is killed (SIGKILL) and the replicas resumed. One of them takes over
// once the other masters consider master failed (after
// cluster-node-timeout). LossyFailover waits until the cluster is healthy
// and returns the new master; the old one stays killed (Restart brings it
// back as a replica).
func (c *Cluster) LossyFailover(master *Server, during func()) *Server {
	c.t.Helper()
	id := c.nodeID(master)
	var replicas []*Server
	for _, s := range c.running() {
		if me, err := s.clusterSelf(); err == nil && !me.master() && me.masterID == id {
			replicas = append(replicas, s)
		}
	}
	if len(replicas) == 0 {
		c.t.Fatalf("testredis: master %s has no running replica", master.Addr())
	}
	loseWrites(c.t, master, replicas, during)
	var promoted *Server
	c.waitFor("a replica of "+master.Addr()+" to take over", func() error {
		for _, r := range replicas {
			if me, err := r.clusterSelf(); err == nil && me.master() && len(me.slots) > 0 {
				promoted = r
				return nil
			}
		}
		return fmt.Errorf("no replica of %s is master yet", master.Addr())
	})
	c.WaitHealthy()
	return promoted
}

// loseWrites freezes the replicas, makes master drop its links to them,
// runs during, kills master and resumes the replicas.
func loseWrites(t testing.TB, master *Server, replicas []*Server, during func()) {
	t.Helper()
	for _, r := range replicas {
		r.Freeze()
	}
	if n := master.DropReplicas(); n < len(replicas) {
		t.Fatalf("testredis: %s dropped %d replica links, want %d", master.Addr(), n, len(replicas))
	}
	during()
	master.Kill()
	for _, r := range replicas {
		r.Resume()
	}
}

// SlotOwner returns the running master that owns slot, as it sees
// itself, failing the test if none does.
func (c *Cluster) SlotOwner(slot int) *Server {
	c.t.Helper()
	for _, s := range c.running() {
		if me, err := s.clusterSelf(); err == nil && me.master() && me.owns(slot) {
			return s
		}
	}
	c.t.Fatalf("testredis: no master owns slot %d", slot)
	return nil
}

// MigrateSlot moves slot to the master to, keys and all, as redis-cli
// --cluster reshard does: BeginMigration, MoveKeys, Finish.
func (c *Cluster) MigrateSlot(slot int, to *Server) {
	c.t.Helper()
	m := c.BeginMigration(slot, to)
	m.MoveKeys()
	m.Finish()
}

// SlotMigration is a slot on its way from one master to another, moved one
// step at a time so that a test can act between the steps. Its methods
// fail the test on error.
type SlotMigration struct {
	c        *Cluster
	slot     int
	from, to *Server
	toID     string
}

// BeginMigration starts moving slot from its master to the master to:
// CLUSTER SETSLOT IMPORTING on to, then MIGRATING on the owner. Meanwhile
// the owner serves the keys it still has and redirects commands on the
// others to to (ASK, or TRYAGAIN for a command on keys of both).
func (c *Cluster) BeginMigration(slot int, to *Server) *SlotMigration {
	c.t.Helper()
	from := c.SlotOwner(slot)
	if from == to {
		c.t.Fatalf("testredis: %s owns slot %d already", to.Addr(), slot)
	}
	m := &SlotMigration{c: c, slot: slot, from: from, to: to, toID: c.nodeID(to)}
	m.do(to, "CLUSTER", "SETSLOT", strconv.Itoa(slot), "IMPORTING", c.nodeID(from))
	m.do(from, "CLUSTER", "SETSLOT", strconv.Itoa(slot), "MIGRATING", m.toID)
	return m
}

// From returns the master the slot is moved from.
func (m *SlotMigration) From() *Server { return m.from }

// MoveKeys moves the slot's keys to the new master with MIGRATE ... KEYS,
// a batch of CLUSTER GETKEYSINSLOT at a time, until the old master has
// none left (it creates no new ones while migrating).
func (m *SlotMigration) MoveKeys() {
	m.c.t.Helper()
	host, port, _ := net.SplitHostPort(m.to.Addr())
	for {
		ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
		keys, err := m.from.DoList(ctx, "CLUSTER", "GETKEYSINSLOT", strconv.Itoa(m.slot), "100")
		cancel()
		if err != nil {
			m.c.t.Fatalf("testredis: CLUSTER GETKEYSINSLOT %d on %s: %v", m.slot, m.from.Addr(), err)
		}
		if len(keys) == 0 {
			return
		}
		args := append([]string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}, keys...)
		m.do(m.from, args...)
	}
}

// MoveKey moves one key of the slot to the new master (MIGRATE), ahead of
// the others: a command on keys of both nodes gets TRYAGAIN until
// MoveKeys moves the rest.
func (m *SlotMigration) MoveKey(key string) {
	m.c.t.Helper()
	host, port, _ := net.SplitHostPort(m.to.Addr())
	m.do(m.from, "MIGRATE", host, port, key, "0", "5000")
}

// Finish makes the new master the slot's owner, with CLUSTER SETSLOT NODE
// on it first, then on the old master (which unsubscribes the slot's
// sharded pub/sub channels as it lets go of the slot) and on the other
// masters, and waits until the cluster is healthy (see WaitHealthy). The
// keys must have been moved.
func (m *SlotMigration) Finish() {
	m.c.t.Helper()
	setslot := []string{"CLUSTER", "SETSLOT", strconv.Itoa(m.slot), "NODE", m.toID}
	m.do(m.to, setslot...)
	m.do(m.from, setslot...)
	for _, s := range m.c.Masters() {
		if s != m.to && s != m.from {
			m.do(s, setslot...)
		}
	}
	m.c.WaitHealthy()
}

func (m *SlotMigration) do(s *Server, args ...string) {
	m.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if _, err := s.Do(ctx, args...); err != nil {
		m.c.t.Fatalf("testredis: %s on %s: %v", strings.Join(args, " "), s.Addr(), err)
	}
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// sees every running node the same way (the same masters owning the same
// slots, the same replicas of the same masters), and every running
// replica's link to its master is up. It fails the test after a deadline.
func (c *Cluster) WaitHealthy() {
	c.t.Helper()
	c.waitFor("the cluster to be healthy", c.healthy)
}

func (c *Cluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var first string
	running := map[string]bool{}
	for _, s := range c.running() {
		running[s.Addr()] = true
	}
	for i, s := range c.running() {
		info, err := s.Do(ctx, "CLUSTER", "INFO")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: not cluster_state:ok", s.Addr())
		}
		nodes, err := parseClusterNodes(s)
		if err != nil {
			return err
		}
		// What the node knows of the running nodes: a master and its
		// slots, or a replica and its master.
		var view []string
		for _, n := range nodes {
			if !running[n.addr] {
				continue
			}
			if strings.Contains(n.flags, "fail") {
				return fmt.Errorf("%s sees %s as %s", s.Addr(), n.addr, n.flags)
			}
			if n.master() {
				view = append(view, n.addr+" master "+strings.Join(n.slots, " "))
			} else {
				view = append(view, n.addr+" replica of "+n.masterID)
			}
			if n.self && !n.master() {
				repl, err := s.Do(ctx, "INFO", "replication")
				if err != nil {
					return err
				}
				if !strings.Contains(repl, "master_link_status:up") {
					return fmt.Errorf("%s: replica not in sync", s.Addr())
				}
			}
		}
		slices.Sort(view)
		v := strings.Join(view, "\n")
		if i == 0 {
			first = v
		} else if v != first {
			return fmt.Errorf("%s sees masters\n%s\nothers see\n%s", s.Addr(), v, first)
		}
	}
	return nil
}

func (c *Cluster) waitFor(what string, cond func() error) {
	c.t.Helper()
	waitFor(c.t, what, cond)
}

// waitFor polls cond until it returns nil, failing the test after
// clusterTimeout with cond's last error.
func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: waiting for %s: %v", what, err)
		}
		time.Sleep(5 * pollInterval)
	}
}

// running returns the nodes that are not killed.
func (c *Cluster) running() []*Server {
	var out []*Server
	for _, s := range c.nodes {
		if s.running() {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) nodeID(s *Server) string {
	c.t.Helper()
	me, err := s.clusterSelf()
	if err != nil {
		c.t.Fatalf("testredis: CLUSTER NODES on %s: %v", s.Addr(), err)
	}
	return me.id
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, flags, masterID string
	self                      bool
	slots                     []string
}

func (n clusterNode) master() bool { return strings.Contains(n.flags, "master") }

// owns reports whether slot is among the node's slots ("5461" or
// "0-5460"; "[5461->-id]", a migration in progress, does not count).
func (n clusterNode) owns(slot int) bool {
	for _, r := range n.slots {
		lo, hi, isRange := strings.Cut(r, "-")
		if !isRange {
			hi = lo
		}
		first, err1 := strconv.Atoi(lo)
		last, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && first <= slot && slot <= last {
			return true
		}
	}
	return false
}

// clusterSelf returns the node's own line of CLUSTER NODES.
func (s *Server) clusterSelf() (clusterNode, error) {
	nodes, err := parseClusterNodes(s)
	if err != nil {
		return clusterNode{}, err
	}
	for _, n := range nodes {
		if n.self {
			return n, nil
		}
	}
	return clusterNode{}, fmt.Errorf("%s: CLUSTER NODES without myself", s.Addr())
}

// parseClusterNodes reads CLUSTER NODES of s: lines of
// "id ip:port@bus flags master ping pong epoch link slot...".
func parseClusterNodes(s *Server) ([]clusterNode, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	reply, err := s.Do(ctx, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var out []clusterNode
	for line := range strings.Lines(reply) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		out = append(out, clusterNode{
			id:       f[0],
			addr:     addr,
			flags:    f[2],
			masterID: f[3],
			self:     strings.Contains(f[2], "myself"),
			slots:    f[8:],
		})
	}
	return out, nil
}
