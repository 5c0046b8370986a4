package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.stop(5 * time.Second)
	}
}
