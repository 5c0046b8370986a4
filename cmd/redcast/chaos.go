package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/redcast/redcast/internal/chaos"
)

// runChaos is "redcast chaos": the fault-injection test (package chaos).
func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o chaos.Options
	long := fs.Bool("long", false, "the longer mode: 5 minutes, 500 clients over 100 channels at 1000 publications/s")
	fs.IntVar(&o.Nodes, "nodes", 3, "redcast nodes")
	fs.IntVar(&o.Clients, "clients", 150, "subscribing clients, spread over the nodes")
	fs.IntVar(&o.Channels, "channels", 30, "channels")
	fs.IntVar(&o.ChannelsPerClient, "channels-per-client", 3, "channels each client subscribes to")
	fs.IntVar(&o.Publishers, "publishers", 6, "publishing clients, spread over the nodes")
	fs.Float64Var(&o.Rate, "rate", 300, "publications per second, all publishers together")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to publish")
	fs.DurationVar(&o.FaultEvery, "fault-every", 4*time.Second, "time between faults (kill -9 a node, or Redis, in turn)")
	fs.DurationVar(&o.FaultDowntime, "fault-downtime", time.Second, "how long a killed process stays down")
	fs.BoolVar(&o.Cluster, "cluster", false, "run Redis as a Cluster (3 masters + 3 replicas); the Redis fault is then a master failover")
	fs.BoolVar(&o.Soak, "soak", false, "steady load without faults, sampling memory and goroutines")
	fs.DurationVar(&o.SampleEvery, "sample-every", 5*time.Second, "with --soak: time between samples")
	fs.StringVar(&o.RedisServer, "redis-server", "", "redis-server binary (default: from PATH)")
	fs.StringVar(&o.Dir, "dir", "", "directory for data and logs (default: a temporary one, removed after a passing run)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("v", false, "print progress (faults as they happen)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: redcast chaos [flags]

Starts its own redis-server (append-only file, fsync always) and redcast
nodes (this binary) on loopback, subscribes clients to channels across the
nodes, publishes through several nodes, and meanwhile kills (kill -9) and
restarts nodes and Redis in turn. Then it checks that every client got
every acknowledged publication of its channels exactly once and in order,
or was told it could not recover, and prints a summary. It exits 1 when a
promise was broken.

Flags:
`)
		fs.PrintDefaults()
	}
	if help, err := parseArgs(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("chaos: unexpected argument %q", fs.Arg(0))
	}
	if *long {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"duration": "5m", "clients": "500", "channels": "100", "rate": "1000", "publishers": "12"} {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	if *verbose {
		o.Log = stderr
	}
	rep, err := chaos.Run(ctx, o)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.Print(stdout)
	}
	if !rep.OK() {
		return errors.New("chaos: promises broken (see the report)")
	}
	return nil
}
