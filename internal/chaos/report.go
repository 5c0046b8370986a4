package chaos

import (
	"fmt"
	"io"
)

// Print writes the report as a short table, the fault schedule and, for a
// soak run, each node's first and last memory and goroutine samples.
func (r *Report) Print(w io.Writer) {
	o := r.Options
	mode := "chaos"
	if o.Soak {
		mode = "soak"
	}
	redis := "Redis"
	if o.Cluster {
		redis = "a Redis Cluster of 3 masters + 3 replicas"
	}
	fmt.Fprintf(w, "redcast %s: %d nodes on %s (AOF, fsync always), %d clients × %d of %d channels, %d publishers at %.0f/s for %v (%v in all)\n",
		mode, o.Nodes, redis, o.Clients, o.ChannelsPerClient, o.Channels, o.Publishers, o.Rate, o.Duration, r.Elapsed.Round(100_000_000))
	fmt.Fprintf(w, "  publications acknowledged  %d (and %d failed at the publisher, allowed to be lost)\n", r.Acked, r.Failed)
	fmt.Fprintf(w, "  deliveries expected        %d\n", r.Expected)
	fmt.Fprintf(w, "  deliveries made            %d\n", r.Delivered)
	fmt.Fprintf(w, "  duplicates                 %d\n", r.Duplicates)
	fmt.Fprintf(w, "  gaps                       %d\n", r.Gaps)
	fmt.Fprintf(w, "  out of order               %d\n", r.OutOfOrder)
	fmt.Fprintf(w, "  acknowledged twice         %d\n", r.AckedTwice)
	fmt.Fprintf(w, "  explicit recovery failures %d (%d deliveries lost that way)\n", r.RecoveryFailures, r.LostExplicitly)
	fmt.Fprintf(w, "  unacknowledged delivered   %d\n", r.Unowed)
	if len(r.Faults) > 0 {
		fmt.Fprintf(w, "  faults:\n")
		for _, f := range r.Faults {
			fmt.Fprintf(w, "    %8v  %s\n", f.At, f.Action)
		}
	}
	if len(r.Samples) > 0 {
		fmt.Fprintf(w, "  samples (first → last):\n")
		for node := range o.Nodes {
			var mine []Sample
			for _, s := range r.Samples {
				if s.Node == node {
					mine = append(mine, s)
				}
			}
			if len(mine) == 0 {
				continue
			}
			first, last := mine[0], mine[len(mine)-1]
			fmt.Fprintf(w, "    node %d: rss %.1f → %.1f MiB, goroutines %.0f → %.0f (%d samples)\n",
				node, first.RSSBytes/(1<<20), last.RSSBytes/(1<<20), first.Goroutines, last.Goroutines, len(mine))
		}
	}
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "  result: %s\n", verdict)
}
