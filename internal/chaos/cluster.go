package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redcast/redcast/internal/rediscmd"
)

// redisDo sends one command to the Redis at addr (see package rediscmd).
func redisDo(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return rediscmd.Do(ctx, addr, args...)
}

// cluster is a Redis Cluster of masters with one replica each, every node
// persisting with an append-only file.
type cluster struct {
	nodes []*redisProc
}

func (r *run) startCluster(ctx context.Context, masters int) (*cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("chaos: redis-cli not found in PATH (it comes with redis-server): %w", err)
	}
	c := &cluster{}
	create := []string{"--cluster", "create"}
	for i := range 2 * masters {
		dir := filepath.Join(r.dir, fmt.Sprintf("redis%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return c, err
		}
		rp, err := startRedis(ctx, r.opts.RedisServer, dir, fmt.Sprintf("redis%d", i), true)
		if err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, rp)
		create = append(create, rp.addr())
	}
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput(); err != nil {
		return c, fmt.Errorf("redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	return c, waitFor(ctx, 30*time.Second, "the cluster to be healthy", c.healthy)
}

// url is the rueidis URL of the cluster: every node as a seed.
func (c *cluster) url() string {
	u := "redis://" + c.nodes[0].addr()
	for i, n := range c.nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.addr()
	}
	return u
}

// healthy reports whether every node says cluster_state:ok and every
// replica is in sync with its master.
func (c *cluster) healthy() bool {
	for _, n := range c.nodes {
		info, err := redisDo(n.addr(), "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		repl, err := redisDo(n.addr(), "INFO", "replication")
		if err != nil || (strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up")) {
			return false
		}
	}
	return true
}

// failover makes a replica take over its master with CLUSTER FAILOVER,
// which waits for the replica to have every write first: it loses nothing.
// It fails over the replicas in turn and returns what it did.
func (c *cluster) failover(ctx context.Context, step int) (string, error) {
	if err := waitFor(ctx, 30*time.Second, "the cluster to be healthy", c.healthy); err != nil {
		return "", err
	}
	var replicas []*redisProc
	for _, n := range c.nodes {
		if repl, err := redisDo(n.addr(), "INFO", "replication"); err == nil && strings.Contains(repl, "role:slave") {
			replicas = append(replicas, n)
		}
	}
	if len(replicas) == 0 {
		return "", errors.New("no replica to fail over to")
	}
	n := replicas[step%len(replicas)]
	if _, err := redisDo(n.addr(), "CLUSTER", "FAILOVER"); err != nil {
		return "", fmt.Errorf("CLUSTER FAILOVER on %s: %w", n.addr(), err)
	}
	err := waitFor(ctx, 30*time.Second, n.name+" to be a master", func() bool {
		repl, err := redisDo(n.addr(), "INFO", "replication")
		return err == nil && strings.Contains(repl, "role:master")
	})
	if err == nil {
		err = waitFor(ctx, 30*time.Second, "the cluster to be healthy", c.healthy)
	}
	return "CLUSTER FAILOVER to " + n.name + " (" + n.addr() + ")", err
}

// lossyFailover makes a master lose what it acknowledges in its last
// window, as asynchronous replication allows: its replica is frozen
// (SIGSTOP) and the master drops its link to it (CLIENT KILL TYPE
// replica); after window the master is killed (SIGKILL) and the replica
// resumed (SIGCONT), to take over once the other masters find the master
// failed (cluster-node-timeout). Then the old master is restarted: it
// rejoins as a replica and drops what it had alone. It takes the masters
// in turn and returns what it did.
func (c *cluster) lossyFailover(ctx context.Context, step int, window time.Duration) (string, error) {
	master, replica := c.masterWithReplica(step)
	if master == nil {
		return "", errors.New("no master with a replica in sync")
	}
	did := fmt.Sprintf("lossy failover of %s (%s): %s frozen and cut off, master killed after %v",
		master.name, master.addr(), replica.name, window)
	if err := replica.signal(syscall.SIGSTOP); err != nil {
		return did, err
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = replica.signal(syscall.SIGCONT)
		}
	}()
	if _, err := redisDo(master.addr(), "CLIENT", "KILL", "TYPE", "replica"); err != nil {
		return did, fmt.Errorf("CLIENT KILL TYPE replica on %s: %w", master.addr(), err)
	}
	sleep(ctx, window)
	master.kill()
	resumed = true
	if err := replica.signal(syscall.SIGCONT); err != nil {
		return did, err
	}
	err := waitFor(ctx, 30*time.Second, replica.name+" to take over", func() bool {
		repl, err := redisDo(replica.addr(), "INFO", "replication")
		return err == nil && strings.Contains(repl, "role:master")
	})
	if err != nil {
		return did, err
	}
	// The old master comes back as a replica; the next failover waits
	// for the cluster to be healthy.
	_, err = master.startReady(ctx, 30*time.Second, master.ready)
	return did + "; restarted as a replica", err
}

// masterWithReplica returns, taking them in turn by step, a master and a
// replica of it in sync, or nils.
func (c *cluster) masterWithReplica(step int) (master, replica *redisProc) {
	type pair struct{ master, replica *redisProc }
	var pairs []pair
	for _, m := range c.nodes {
		repl, err := redisDo(m.addr(), "INFO", "replication")
		if err != nil || !strings.Contains(repl, "role:master") {
			continue
		}
		for _, r := range c.nodes {
			rr, err := redisDo(r.addr(), "INFO", "replication")
			if err == nil && strings.Contains(rr, "role:slave") && strings.Contains(rr, "master_link_status:up") &&
				strings.Contains(rr, "master_port:"+strconv.Itoa(m.port)+"\r\n") {
				pairs = append(pairs, pair{m, r})
				break
			}
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	p := pairs[step%len(pairs)]
	return p.master, p.replica
}

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.stop(5 * time.Second)
	}
}
