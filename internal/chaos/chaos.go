package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Options configure a run. Zero values mean the defaults of the short
// mode, which CI runs.
type Options struct {
	// Binary is the redcast binary the nodes run. Default: this program.
	Binary string
	// RedisServer is the redis-server binary. Default: found in PATH.
	RedisServer string
	// Nodes is how many redcast nodes run. Default 3.
	Nodes int
	// Clients subscribe, each to ChannelsPerClient of Channels channels,
	// spread over the nodes. Defaults 150, 30 and 3.
	Clients           int
	Channels          int
	ChannelsPerClient int
	// Publishers publish Rate publications per second in all, through
	// the nodes in turn. Defaults 6 and 300.
	Publishers int
	Rate       float64
	// Duration is how long publishing lasts. Default 30s.
	Duration time.Duration
	// FaultEvery is the time between two faults; faults rotate through
	// killing a node (SIGKILL, restarted after FaultDowntime) and killing
	// Redis (restarted from its append-only file after FaultDowntime).
	// Defaults 4s and 1s. Soak runs no faults.
	FaultEvery    time.Duration
	FaultDowntime time.Duration
	// Cluster runs Redis as a Cluster of 3 masters with a replica each
	// (append-only files, fsync always) instead of one server; the Redis
	// fault is then a master failover, in turn a lossy one (the replica
	// frozen and cut off, the master killed FaultDowntime later, so that
	// what it acknowledged meanwhile is lost) and a lossless one
	// (CLUSTER FAILOVER).
	Cluster bool
	// Soak runs steady load without faults, sampling each node's memory
	// and goroutines every SampleEvery (default 5s).
	Soak        bool
	SampleEvery time.Duration
	// Settle bounds the wait, after publishing stops, for clients to
	// receive what they are owed. Default 30s.
	Settle time.Duration
	// Dir keeps the processes' data and logs; default a temporary
	// directory removed at the end (kept when the run fails).
	Dir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (o Options) withDefaults() (Options, error) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Nodes, 3)
	def(&o.Clients, 150)
	def(&o.Channels, 30)
	def(&o.ChannelsPerClient, 3)
	o.ChannelsPerClient = min(o.ChannelsPerClient, o.Channels)
	def(&o.Publishers, 6)
	if o.Rate <= 0 {
		o.Rate = 300
	}
	defDur(&o.Duration, 30*time.Second)
	defDur(&o.FaultEvery, 4*time.Second)
	defDur(&o.FaultDowntime, time.Second)
	defDur(&o.SampleEvery, 5*time.Second)
	defDur(&o.Settle, 30*time.Second)
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("%w: %v", errNoBinary, err)
		}
		o.Binary = exe
	}
	if o.RedisServer == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			return o, fmt.Errorf("chaos: redis-server not found in PATH (apt-get install redis-server): %w", err)
		}
		o.RedisServer = p
	}
	return o, nil
}

// Fault is one fault of the schedule.
type Fault struct {
	At     time.Duration `json:"at"` // since publishing started
	Action string        `json:"action"`
}

// Sample is one soak measurement of one node.
type Sample struct {
	At         time.Duration `json:"at"`
	Node       int           `json:"node"`
	RSSBytes   float64       `json:"rss_bytes"`
	Goroutines float64       `json:"goroutines"`
}

// Report is the outcome of a run.
type Report struct {
	Options Options `json:"-"`
	// Acked publications were acknowledged to their publisher; Failed
	// ones got an error (they may or may not have been stored).
	Acked, Failed int
	// Expected counts (client, publication) pairs owed: every acked
	// publication of each channel a client subscribes to. Delivered
	// counts those received.
	Expected, Delivered int
	// Duplicates, Gaps, OutOfOrder and AckedTwice are violations: a
	// publication received twice, an owed publication never received
	// without the client being told, an offset received after a greater
	// one, a position (channel, epoch and offset) acknowledged to two
	// publications (after a lossy failover), which a client takes for one.
	Duplicates, Gaps, OutOfOrder, AckedTwice int
	// RecoveryFailures counts the times a client was told it could not
	// recover (recovered: false); LostExplicitly the owed publications
	// those clients missed.
	RecoveryFailures, LostExplicitly int
	// Unowed counts publications received that were never acknowledged
	// (their publisher saw an error): allowed, not checked.
	Unowed int
	// Faults is the schedule that ran; Samples the soak measurements.
	Faults  []Fault
	Samples []Sample
	Elapsed time.Duration
}

// OK reports whether the run kept every promise: no duplicates, gaps or
// reorders, and every owed publication delivered or explicitly lost.
func (r *Report) OK() bool {
	return r.Duplicates == 0 && r.Gaps == 0 && r.OutOfOrder == 0 && r.AckedTwice == 0 &&
		r.Delivered+r.LostExplicitly >= r.Expected
}

// run is the state of one run.
type run struct {
	opts    Options
	dir     string
	prefix  string
	redis   *redisProc // standalone
	cluster *cluster   // or Cluster
	nodes   []*nodeProc
	start   time.Time

	mu      sync.Mutex
	faults  []Fault
	samples []Sample
}

// Run runs chaos with opts until it is done or ctx ends.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &run{opts: opts, prefix: "chaos" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	r.dir = opts.Dir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "redcast-chaos-"); err != nil {
			return nil, err
		}
	}
	rep, err := r.run(ctx)
	if opts.Dir == "" {
		if err == nil && rep.OK() {
			_ = os.RemoveAll(r.dir)
		} else {
			fmt.Fprintf(opts.Log, "logs kept in %s\n", r.dir)
		}
	}
	return rep, err
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Log, "%6.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *run) run(ctx context.Context) (*Report, error) {
	r.start = time.Now()
	defer r.stopAll()
	if err := r.startRedis(ctx); err != nil {
		return nil, err
	}
	for i := range r.opts.Nodes {
		if err := r.startNode(ctx, i); err != nil {
			return nil, err
		}
	}
	r.logf("redis on %s, %d nodes up", r.redisURL(), len(r.nodes))

	w, err := r.startClients(ctx)
	if err != nil {
		return nil, err
	}
	defer w.close()
	r.logf("%d clients subscribed to %d channels", r.opts.Clients, r.opts.Channels)

	pctx, stopPublishing := context.WithTimeout(ctx, r.opts.Duration)
	defer stopPublishing()
	var bg sync.WaitGroup
	bg.Go(func() { w.publish(pctx) })
	if r.opts.Soak {
		bg.Go(func() { w.sample(pctx) })
	} else {
		bg.Go(func() { r.faultLoop(pctx) })
	}
	bg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.logf("publishing stopped; waiting for every node and client to catch up")
	for i := range r.nodes {
		if err := waitFor(ctx, 30*time.Second, "node "+strconv.Itoa(i)+" ready", r.nodes[i].ready); err != nil {
			return nil, err
		}
	}
	w.settle(ctx, r.opts.Settle)
	rep := w.report()
	rep.Options = r.opts
	rep.Faults = r.faults
	rep.Samples = r.samples
	rep.Elapsed = time.Since(r.start)
	return rep, nil
}

// redisURL is what the nodes get as --redis.
func (r *run) redisURL() string {
	if r.cluster != nil {
		return r.cluster.url()
	}
	return r.redis.url()
}

func (r *run) startRedis(ctx context.Context) error {
	if r.opts.Cluster {
		c, err := r.startCluster(ctx, 3)
		r.cluster = c
		return err
	}
	rp, err := startRedis(ctx, r.opts.RedisServer, r.dir, "redis", false)
	r.redis = rp
	return err
}

// startNode starts node i on a free port and waits until it is ready,
// trying another port when the node exits at start.
func (r *run) startNode(ctx context.Context, i int) error {
	var last error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		n := &nodeProc{port: port}
		n.process = process{
			name: "node" + strconv.Itoa(i), path: r.opts.Binary, log: filepath.Join(r.dir, fmt.Sprintf("node%d.log", i)),
			args: []string{"serve", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--redis", r.redisURL(),
				"--redis-prefix", r.prefix, "--history-size", "10000", "--publish-rate", "-1",
				"--node-name", "chaos-" + strconv.Itoa(i), "--log-level", "warn", "--reconnect-spread", "500ms"},
		}
		exited, err := n.startReady(ctx, 30*time.Second, n.ready)
		if err == nil {
			r.nodes = append(r.nodes, n)
			return nil
		}
		if last = err; !exited {
			return err
		}
	}
	return last
}

func (r *run) stopAll() {
	for _, n := range r.nodes {
		n.stop(5 * time.Second)
	}
	if r.redis != nil {
		r.redis.stop(5 * time.Second)
	}
	if r.cluster != nil {
		r.cluster.stop()
	}
}

func (r *run) fault(action string) {
	r.mu.Lock()
	r.faults = append(r.faults, Fault{At: time.Since(r.start).Round(time.Millisecond), Action: action})
	r.mu.Unlock()
	r.logf("fault: %s", action)
}

// faultLoop kills and restarts nodes and Redis in turn until ctx ends.
func (r *run) faultLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.FaultEvery)
	defer t.Stop()
	deadline, _ := ctx.Deadline()
	next := 0        // the node to kill next
	redisFaults := 0 // Redis faults so far
	for step := 0; ; step++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !deadline.IsZero() && time.Until(deadline) < r.opts.FaultDowntime {
			return // a fault must not outlast publishing
		}
		// Every (nodes+1)th fault is Redis, the first one too, so that a
		// short run sees publications after it; the others kill nodes in
		// turn.
		redisTurn := step%(len(r.nodes)+1) == 0
		if redisTurn && r.cluster != nil {
			// Lossy and lossless failovers in turn, the lossy first.
			var (
				did string
				err error
			)
			if redisFaults++; redisFaults%2 == 1 {
				r.fault("failing over a Redis master, losing writes")
				did, err = r.cluster.lossyFailover(context.WithoutCancel(ctx), redisFaults/2, r.opts.FaultDowntime)
			} else {
				r.fault("failing over a Redis master")
				did, err = r.cluster.failover(context.WithoutCancel(ctx), step)
			}
			if err != nil {
				r.logf("failover: %v", err)
				return
			}
			r.fault(did)
			continue
		}
		if redisTurn {
			r.fault("kill -9 redis")
			r.redis.kill()
			sleep(ctx, r.opts.FaultDowntime)
			if err := r.redis.start(); err != nil {
				r.logf("restart redis: %v", err)
				return
			}
			_ = waitFor(context.WithoutCancel(ctx), 10*time.Second, "redis back", r.redis.ready)
			r.fault("redis restarted from its AOF")
			continue
		}
		n := r.nodes[next%len(r.nodes)]
		next++
		r.fault("kill -9 " + n.name)
		n.kill()
		sleep(ctx, r.opts.FaultDowntime)
		if err := n.start(); err != nil {
			r.logf("restart %s: %v", n.name, err)
			return
		}
		if err := waitFor(context.WithoutCancel(ctx), 30*time.Second, n.name+" ready", n.ready); err != nil {
			r.logf("%v", err)
		}
		r.fault(n.name + " restarted")
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
