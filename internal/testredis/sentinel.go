package testredis

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelOptions configure a Sentinel setup. Zero values mean the
// defaults.
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor the master under.
	// Default "mymaster".
	MasterName string
	// Replicas is how many replicas the master has; at least 1 so that a
	// failover has somewhere to go. Default 1.
	Replicas int
	// Sentinels is how many sentinels watch the master (quorum 1, so one
	// alone can fail it over). Default 2.
	Sentinels int
	// Node applies to the master and replicas (AppendOnly, extra Args).
	Node Options
}

// Sentinel is a master, its replicas and the sentinels that watch them,
// each a process on a free loopback port, all killed when the test ends.
type Sentinel struct {
	t         testing.TB
	name      string
	servers   []*Server // the master first, then the replicas, as started
	sentinels []*Server
}

// StartSentinel starts the master, the replicas (REPLICAOF the master) and
// the sentinels (SENTINEL MONITOR the master), and waits until the
// replicas are in sync and every sentinel knows every replica and the
// other sentinels.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Sentinels == 0 {
		opts.Sentinels = 2
	}
	st := &Sentinel{t: t, name: opts.MasterName}
	master := startMode(t, opts.Node, modePlain)
	st.servers = append(st.servers, master)
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for range opts.Replicas {
		r := startMode(t, opts.Node, modePlain)
		st.must(ctx, r, "REPLICAOF", "127.0.0.1", strconv.Itoa(master.port))
		st.servers = append(st.servers, r)
	}
	for range opts.Sentinels {
		s := startMode(t, Options{}, modeSentinel)
		st.must(ctx, s, "SENTINEL", "MONITOR", st.name, "127.0.0.1", strconv.Itoa(master.port), "1")
		for _, kv := range [][2]string{
			{"down-after-milliseconds", "1000"},
			{"failover-timeout", "10000"},
		} {
			st.must(ctx, s, "SENTINEL", "SET", st.name, kv[0], kv[1])
		}
		st.sentinels = append(st.sentinels, s)
	}
	st.waitFor("the sentinels to know the replicas", func() error {
		return st.settled(master, true)
	})
	return st
}

// URL returns a redis:// URL naming every sentinel and the master name, in
// the form rueidis reads: redis://s1?addr=s2&master_set=NAME
func (st *Sentinel) URL() string {
	q := url.Values{}
	for _, s := range st.sentinels[1:] {
		q.Add("addr", s.Addr())
	}
	q.Set("master_set", st.name)
	return "redis://" + st.sentinels[0].Addr() + "?" + q.Encode()
}

// Name returns the name the sentinels monitor the master under.
func (st *Sentinel) Name() string { return st.name }

// Servers returns the master and its replicas, in the order they were
// started (roles change with failovers: see Master).
func (st *Sentinel) Servers() []*Server { return append([]*Server(nil), st.servers...) }

// Sentinels returns the sentinel processes.
func (st *Sentinel) Sentinels() []*Server { return append([]*Server(nil), st.sentinels...) }

// Master returns the server that the first sentinel reports as master.
func (st *Sentinel) Master() *Server {
	st.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := st.sentinels[0].Do(ctx, "INFO", "sentinel")
	if err != nil {
		st.t.Fatalf("testredis: INFO sentinel: %v", err)
	}
	for _, s := range st.servers {
		if strings.Contains(info, "address="+s.Addr()+",") {
			return s
		}
	}
	st.t.Fatalf("testredis: no known server is master in:\n%s", info)
	return nil
}

// Failover runs SENTINEL FAILOVER and waits until a replica has become
// master and every sentinel reports it. It returns the new master. The
// old master becomes a replica when the sentinels next look at it (within
// about 10 seconds).
func (st *Sentinel) Failover() *Server {
	st.t.Helper()
	old := st.Master()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	// A sentinel refuses (NOGOODSLAVE) until it has talked to a replica
	// recently enough.
	st.waitFor("a sentinel to start a failover", func() error {
		_, err := st.sentinels[0].Do(ctx, "SENTINEL", "FAILOVER", st.name)
		if err != nil && !strings.HasPrefix(err.Error(), "NOGOODSLAVE") {
			st.t.Fatalf("testredis: SENTINEL FAILOVER: %v", err)
		}
		return err
	})
	var master *Server
	st.waitFor("a failover", func() error {
		m, err := st.promoted(old)
		if err != nil {
			return err
		}
		master = m
		return st.settled(m, false)
	})
	return master
}

// LossyFailover makes a replica take over without the writes of the
// master's last moments, as asynchronous replication allows: the replicas
// are frozen (SIGSTOP) and the master drops its links to them, then
// during runs (what the master acknowledges meanwhile reaches no replica),
// then the master is killed (SIGKILL) and the replicas resumed. It first
// waits until every other running server is a replica in sync. The
// sentinels promote one once the master has been down for
// down-after-milliseconds (1s). LossyFailover waits until every sentinel
// names the new master and returns it; the old one stays killed.
func (st *Sentinel) LossyFailover(during func()) *Server {
	st.t.Helper()
	old := st.Master()
	// Every other server must be a replica already: one that turned into
	// a replica meanwhile (an old master) would get the writes.
	st.waitFor("every replica to be in sync", func() error { return st.settled(old, true) })
	var replicas []*Server
	for _, s := range st.servers {
		if s != old && s.running() {
			replicas = append(replicas, s)
		}
	}
	loseWrites(st.t, old, replicas, during)
	var master *Server
	st.waitFor("a failover after the master died", func() error {
		m, err := st.promoted(old)
		if err != nil {
			return err
		}
		master = m
		return st.settled(m, false)
	})
	return master
}

// promoted returns the server other than old that says it is master.
func (st *Sentinel) promoted(old *Server) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range st.servers {
		if s == old {
			continue
		}
		if repl, err := s.Do(ctx, "INFO", "replication"); err == nil && strings.Contains(repl, "role:master") {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no replica of %s promoted yet", old.Addr())
}

// settled reports nil when every sentinel names master as the master and,
// with replicas, knows every other server as its replica and every running
// one is in sync with master.
func (st *Sentinel) settled(master *Server, replicas bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	want := "status=ok,address=" + master.Addr() + ","
	if replicas {
		// Sentinels keep listing a replica that is down.
		want += fmt.Sprintf("slaves=%d,", len(st.servers)-1)
	}
	for _, s := range st.servers {
		if !replicas || s == master || !s.running() {
			continue
		}
		repl, err := s.Do(ctx, "INFO", "replication")
		if err != nil {
			return err
		}
		if !strings.Contains(repl, "master_port:"+strconv.Itoa(master.port)) || !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("%s is not in sync with %s", s.Addr(), master.Addr())
		}
	}
	for _, s := range st.sentinels {
		info, err := s.Do(ctx, "INFO", "sentinel")
		if err != nil {
			return err
		}
		if !strings.Contains(info, want) {
			return fmt.Errorf("sentinel %s does not report %s:\n%s", s.Addr(), want, info)
		}
	}
	return nil
}

func (st *Sentinel) must(ctx context.Context, s *Server, args ...string) {
	st.t.Helper()
	if _, err := s.Do(ctx, args...); err != nil {
		st.t.Fatalf("testredis: %s on %s: %v", strings.Join(args, " "), s.Addr(), err)
	}
}

func (st *Sentinel) waitFor(what string, cond func() error) {
	st.t.Helper()
	waitFor(st.t, what, cond)
}
