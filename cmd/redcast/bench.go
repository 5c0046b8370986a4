package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redcast/redcast/internal/loadgen"
)

// runBench is `redcast bench`: it runs the load generator against a server
// and prints its report, as text or JSON.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o           loadgen.Options
		scenario    = fs.String("scenario", "fanout", "fanout, idle or storm")
		warmup      = fs.Duration("warmup", time.Second, "fanout: publishing before measuring, once every subscriber receives (0: none)")
		sourceAddrs = fs.String("source-addrs", "", "local addresses to spread connections over: a count N for 127.0.0.1 … 127.0.0.N, or a comma-separated list (needed past about 28k connections)")
		asJSON      = fs.Bool("json", false, "print the report as JSON")
		row         = fs.String("row", "", "print the report as one row of a table, named `NAME` (scripts/bench); --row-header prints the header")
		jsonOut     = fs.String("json-out", "", "also write the report as JSON to `FILE`")
		rowHeader   = fs.Bool("row-header", false, "print the header of the --row table and exit")
		quick       = fs.Bool("quick", false, "a tiny run that takes about a second, to check that a setup works (flags given explicitly win)")
		logLevel    = fs.String("log-level", "info", "level of the progress messages on stderr: debug, info, warn, error")
	)
	fs.StringVar(&o.URL, "url", "ws://127.0.0.1:8080", "the server's base URL (ws:// or wss://)")
	fs.StringVar(&o.ChannelPrefix, "channel-prefix", "bench", "full-protocol subscribers use channels PREFIX-0 … PREFIX-(channels-1); a namespace (\"quiet:bench\") picks its options")
	fs.StringVar(&o.PlainRoom, "plain-room", "", "subscribe in plain mode to this room (rooms ROOM-0 … with several channels); publishers use the full protocol")
	fs.StringVar(&o.PusherKey, "pusher-key", "", "subscribe with the Pusher protocol to the app of this key, to its channels PREFIX-0 …; publishers use the full protocol, to NAMESPACE:PREFIX-0 …")
	fs.StringVar(&o.PusherNamespace, "pusher-namespace", "pusher", "with --pusher-key: the namespace of the app's channels, where publishers publish")
	fs.IntVar(&o.Subscribers, "subscribers", 1000, "subscriber connections, spread round-robin over the channels")
	fs.IntVar(&o.Channels, "channels", 1, "channels")
	fs.IntVar(&o.Publishers, "publishers", 1, "publisher connections (fanout, storm)")
	fs.Float64Var(&o.Rate, "rate", 0, "publications per second of all publishers; 0: as fast as the in-flight window allows (storm: rate of the probes that cycle over the channels, 0 means 100)")
	fs.IntVar(&o.MessageSize, "size", 64, "bytes of each publication's data")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long fanout measures and idle holds its connections")
	fs.IntVar(&o.InFlight, "inflight", 100, "publishes one publisher may have without a reply")
	fs.IntVar(&o.ConnectConcurrency, "connect-concurrency", 64, "connections being opened at once (storm: all)")
	fs.BoolVar(&o.Compression, "compression", false, "offer permessage-deflate on every connection (the server compresses when started with --compression)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "the server's process id, to report its RSS per connection and CPU per delivery (same machine)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: redcast bench [flags]\n\n"+
			"Runs a load generator against a redcast server and reports connections, deliveries,\n"+
			"loss, latency, its own CPU use and, with --server-pid, the server's memory and CPU.\n"+
			"Mind the server's --publish-rate (per connection) when publishing fast.\n\n"+
			"Every flag can also be set with an environment variable: --server-pid as REDCAST_SERVER_PID.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	set, err := parseWithEnv(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *rowHeader {
		_, err := fmt.Fprintln(stdout, loadgen.TableHeader)
		return err
	}
	log, err := newLogger(stderr, *logLevel, "text")
	if err != nil {
		return err
	}
	o.Logger = log
	o.Scenario = loadgen.Scenario(*scenario)
	if *quick {
		quickDefaults(&o, set, warmup)
	}
	o.Warmup = *warmup
	if o.Warmup == 0 {
		o.Warmup = -1 // none; loadgen's zero means its default
	}
	if o.SourceAddrs, err = parseSourceAddrs(*sourceAddrs); err != nil {
		return fmt.Errorf("--source-addrs: %w", err)
	}
	rep, err := loadgen.Run(ctx, o)
	if rep != nil {
		if perr := printReport(stdout, rep, *asJSON, *row); perr != nil {
			return errors.Join(err, perr)
		}
		if *jsonOut != "" {
			if werr := writeJSONReport(*jsonOut, rep); werr != nil {
				return errors.Join(err, werr)
			}
		}
	}
	return err
}

// quickDefaults shrinks a run to about a second (--quick): few
// connections, short phases. Flags set explicitly keep their values.
func quickDefaults(o *loadgen.Options, set map[string]bool, warmup *time.Duration) {
	if !set["subscribers"] {
		o.Subscribers = 20
	}
	if !set["duration"] {
		o.Duration = 500 * time.Millisecond
	}
	if !set["warmup"] {
		*warmup = 100 * time.Millisecond
	}
	if !set["rate"] && o.Scenario != loadgen.Storm {
		o.Rate = 200
	}
	if !set["channels"] && o.Channels > o.Subscribers {
		o.Channels = o.Subscribers
	}
}

func writeJSONReport(name string, rep *loadgen.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}

func printReport(w io.Writer, rep *loadgen.Report, asJSON bool, row string) error {
	switch {
	case row != "":
		return rep.WriteRow(w, row)
	case !asJSON:
		return rep.WriteText(w)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// parseSourceAddrs reads --source-addrs: empty, a count N of loopback
// addresses from 127.0.0.1, or a comma-separated list of addresses.
func parseSourceAddrs(s string) ([]netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 254 {
			return nil, fmt.Errorf("%d addresses: want 1 to 254", n)
		}
		out := make([]netip.Addr, n)
		for i := range out {
			out[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)})
		}
		return out, nil
	}
	var out []netip.Addr
	for part := range strings.SplitSeq(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
