package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is what a Run measured. Durations are in nanoseconds in JSON.
// Counts of publishes and deliveries cover the measured publications only
// (those sent during Duration after the warm-up), however late they
// arrive; DeliveriesPerSecond, CPU times and the window cover what happened
// during Duration.
type Report struct {
	Scenario    Scenario      `json:"scenario"`
	Mode        string        `json:"mode"` // "protocol", "plain" or "pusher"
	URL         string        `json:"url"`
	Subscribers int           `json:"subscribers"`
	Channels    int           `json:"channels"`
	Publishers  int           `json:"publishers"`
	Rate        float64       `json:"rate"` // target publications/s of all publishers; 0 as fast as possible
	MessageSize int           `json:"message_size"`
	InFlight    int           `json:"inflight"`
	Warmup      time.Duration `json:"warmup_ns"`
	// Window is the measurement window: the measured publishing (fanout),
	// the idle hold (idle), or connecting (storm).
	Window time.Duration `json:"window_ns"`

	Connections Connections `json:"connections"`
	Publishes   Publishes   `json:"publishes"`
	Deliveries  Deliveries  `json:"deliveries"`
	Latency     Latency     `json:"latency"`
	LoadGen     CPUUse      `json:"loadgen"`
	// Server is present when Options.ServerPID was given.
	Server *Server `json:"server,omitempty"`
}

// Connections reports the subscriber connections.
type Connections struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
	// Errors counts the failures by error.
	Errors map[string]int `json:"errors,omitempty"`
	// ConnectTime is from the first dial until the last subscriber was
	// subscribed (full protocol) or upgraded (plain mode).
	ConnectTime time.Duration `json:"connect_time_ns"`
	// ReadyTime is from the first publish until every subscriber had
	// received a publication (fanout, storm); NotReady counts those that
	// had not within 30s.
	ReadyTime time.Duration `json:"ready_time_ns"`
	NotReady  int           `json:"not_ready"`
	// Disconnected counts subscribers whose connection ended before the
	// run closed it, by reason (close code or error).
	Disconnected int            `json:"disconnected"`
	Disconnects  map[string]int `json:"disconnects,omitempty"`
}

// Publishes reports the measured publish commands.
type Publishes struct {
	Sent    int64 `json:"sent"`
	Acked   int64 `json:"acked"`
	Failed  int64 `json:"failed"`
	Unacked int64 `json:"unacked"` // without a reply when the run ended
	// PerSecond is Sent per second of the window.
	PerSecond float64 `json:"per_second"`
	// Total counts every publish written, with the probes and the warm-up.
	Total int64 `json:"total"`
	// Errors counts error replies by protocol error code, all phases.
	Errors map[int]int64 `json:"errors,omitempty"`
	// PublishersLost counts publishers whose connection ended early.
	PublishersLost int `json:"publishers_lost"`
}

// Deliveries reports the publications subscribers received.
type Deliveries struct {
	// Expected is, for every acknowledged measured publication, the
	// number of subscribers of its channel; Received counts the measured
	// publications received, each once; Lost is the difference (never
	// negative).
	Expected   int64 `json:"expected"`
	Received   int64 `json:"received"`
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	// Malformed counts publications whose stamp could not be read.
	Malformed int64 `json:"malformed"`
	// PerSecond counts every publication received during the window.
	PerSecond float64 `json:"per_second"`
	// WireBytes is how many bytes the subscribers read from their sockets
	// during the window per publication received: the frames (compressed
	// or not), headers and all.
	WireBytes float64 `json:"wire_bytes_per_delivery"`
}

// CPUUse reports the load generator's CPU time during the window.
type CPUUse struct {
	CPU        time.Duration `json:"cpu_ns"`
	GOMAXPROCS int           `json:"gomaxprocs"`
	// Utilization is CPU / (window × GOMAXPROCS); at 0.9 or more the load
	// generator was Saturated and the numbers show its limit, not the
	// server's.
	Utilization float64 `json:"utilization"`
	Saturated   bool    `json:"saturated"`
}

// Server reports the server process named by Options.ServerPID.
type Server struct {
	PID int `json:"pid"`
	// RSS before the subscribers connected, once they all had, and at the
	// end of the window, in bytes.
	RSSBefore    int64 `json:"rss_before"`
	RSSConnected int64 `json:"rss_connected"`
	RSSEnd       int64 `json:"rss_end"`
	// RSSPerConnection is (RSSConnected - RSSBefore) / Connections.OK:
	// it includes the garbage that connecting left, which the next
	// collections reuse. RSSEndPerConnection is (RSSEnd - RSSBefore) /
	// Connections.OK: in the idle scenario, what an idle connection costs
	// once the runtime returned what it no longer needs.
	RSSPerConnection    int64 `json:"rss_per_connection"`
	RSSEndPerConnection int64 `json:"rss_end_per_connection"`
	// CPU is the server's CPU time during the window (10 ms resolution);
	// Utilization is CPU / window.
	CPU         time.Duration `json:"cpu_ns"`
	Utilization float64       `json:"utilization"`
	// CPUPerDelivery is CPU divided by the publications delivered during
	// the window, in nanoseconds (fanout).
	CPUPerDelivery float64 `json:"cpu_per_delivery_ns"`
	// Writes counts the server's write system calls during the window;
	// DeliveriesPerWrite is how many deliveries one carried on average
	// (fanout): the coalescing of its writers.
	Writes             int64   `json:"writes"`
	DeliveriesPerWrite float64 `json:"deliveries_per_write"`
	// Error says why a figure is missing.
	Error string `json:"error,omitempty"`
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := "full protocol"
	switch r.Mode {
	case "plain":
		mode = "plain mode"
	case "pusher":
		mode = "Pusher protocol"
	}
	fmt.Fprintf(&b, "scenario      %s, %s, %s\n", r.Scenario, mode, r.URL)
	fmt.Fprintf(&b, "setup         %d subscribers in %d channel(s)", r.Subscribers, r.Channels)
	if r.Scenario != Idle {
		rate := "as fast as possible"
		if r.Rate > 0 {
			rate = fmt.Sprintf("at %g msg/s", r.Rate)
		}
		fmt.Fprintf(&b, ", %d publisher(s) %s (in flight ≤ %d), %d-byte data", r.Publishers, rate, r.InFlight, r.MessageSize)
	}
	fmt.Fprintf(&b, ", window %v", r.Window.Round(time.Millisecond))
	if r.Scenario == Fanout && r.Warmup > 0 {
		fmt.Fprintf(&b, " after %v warm-up", r.Warmup.Round(time.Millisecond))
	}
	b.WriteString("\n")
	c := r.Connections
	fmt.Fprintf(&b, "connections   %d ok, %d failed, connected in %v", c.OK, c.Failed, c.ConnectTime.Round(time.Microsecond))
	if r.Scenario != Idle {
		fmt.Fprintf(&b, ", all receiving %v after the first publish", c.ReadyTime.Round(time.Microsecond))
		if c.NotReady > 0 {
			fmt.Fprintf(&b, " (%d never)", c.NotReady)
		}
	}
	fmt.Fprintf(&b, ", %d disconnected\n", c.Disconnected)
	writeCounts(&b, "  failures", c.Errors)
	writeCounts(&b, "  disconnects", c.Disconnects)
	if r.Scenario == Fanout {
		p := r.Publishes
		fmt.Fprintf(&b, "publishes     %d sent (%.0f/s), %d acked, %d failed, %d unacked; %d in all phases\n",
			p.Sent, p.PerSecond, p.Acked, p.Failed, p.Unacked, p.Total)
		if len(p.Errors) > 0 {
			errs := make(map[string]int, len(p.Errors))
			for code, n := range p.Errors {
				errs[fmt.Sprintf("error %d", code)] = int(n)
			}
			writeCounts(&b, "  errors", errs)
		}
		if p.PublishersLost > 0 {
			fmt.Fprintf(&b, "  %d publisher(s) lost their connection\n", p.PublishersLost)
		}
		d := r.Deliveries
		fmt.Fprintf(&b, "deliveries    %d expected, %d received, %d lost, %d duplicates", d.Expected, d.Received, d.Lost, d.Duplicates)
		if d.Malformed > 0 {
			fmt.Fprintf(&b, ", %d malformed", d.Malformed)
		}
		fmt.Fprintf(&b, "\nthroughput    %.0f deliveries/s, %.0f bytes read per delivery\n", d.PerSecond, d.WireBytes)
		l := r.Latency
		fmt.Fprintf(&b, "latency       p50 %v  p90 %v  p99 %v  p99.9 %v  max %v  (%d samples)\n",
			fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max), l.Count)
	}
	g := r.LoadGen
	sat := "not saturated"
	if g.Saturated {
		sat = "SATURATED: the numbers show the load generator's limit"
	}
	fmt.Fprintf(&b, "load gen      CPU %v in the window, GOMAXPROCS %d: %.0f%% (%s)\n",
		g.CPU.Round(time.Millisecond), g.GOMAXPROCS, 100*g.Utilization, sat)
	if s := r.Server; s != nil {
		fmt.Fprintf(&b, "server        pid %d: RSS %s before, %s connected, %s at the end: %s per connection (%s at the end)\n",
			s.PID, fmtBytes(s.RSSBefore), fmtBytes(s.RSSConnected), fmtBytes(s.RSSEnd), fmtBytes(s.RSSPerConnection), fmtBytes(s.RSSEndPerConnection))
		fmt.Fprintf(&b, "              CPU %v in the window (%.0f%% of a core)", s.CPU.Round(time.Millisecond), 100*s.Utilization)
		if s.CPUPerDelivery > 0 {
			fmt.Fprintf(&b, ", %.3f µs per delivery", s.CPUPerDelivery/1e3)
		}
		if s.Writes > 0 {
			fmt.Fprintf(&b, "; %d writes", s.Writes)
			if s.DeliveriesPerWrite > 0 {
				fmt.Fprintf(&b, ", %.1f deliveries per write", s.DeliveriesPerWrite)
			}
		}
		b.WriteString("\n")
		if s.Error != "" {
			fmt.Fprintf(&b, "              (%s)\n", s.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCounts writes counts by key, largest first.
func writeCounts(b *strings.Builder, title string, counts map[string]int) {
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		if d := counts[b] - counts[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		fmt.Fprintf(b, "%s: %d× %s\n", title, counts[k], k)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 || n <= -1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 || n <= -1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 || n <= -1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// TableHeader is the header of the table that WriteRow writes rows of.
const TableHeader = "scenario                    conns     deliveries/s  lost  p50       p99       srv µs/deliv  B/deliv  deliv/write  RSS/conn   RSS end    connect    ready      loadgen"

// WriteRow writes the report as one row of a table under TableHeader,
// named name: the figures that compare runs. A figure that does not apply
// to the scenario is "-".
func (r *Report) WriteRow(w io.Writer, name string) error {
	dash := func(ok bool, s string) string {
		if !ok {
			return "-"
		}
		return s
	}
	fanout := r.Scenario == Fanout
	d, l, s := r.Deliveries, r.Latency, r.Server
	if s == nil {
		s = &Server{}
	}
	conns := fmt.Sprintf("%d", r.Connections.OK)
	if r.Connections.Failed > 0 || r.Connections.Disconnected > 0 {
		conns += fmt.Sprintf("(-%d)", r.Connections.Failed+r.Connections.Disconnected)
	}
	sat := fmt.Sprintf("%.0f%%", 100*r.LoadGen.Utilization)
	if r.LoadGen.Saturated {
		sat += " SAT"
	}
	_, err := fmt.Fprintf(w, "%-27s %-9s %-13s %-5s %-9s %-9s %-13s %-8s %-12s %-10s %-10s %-10s %-10s %s\n",
		name, conns,
		dash(fanout, fmt.Sprintf("%.0f", d.PerSecond)),
		dash(fanout, fmt.Sprintf("%d", d.Lost)),
		dash(fanout && l.Count > 0, fmtDur(l.P50)),
		dash(fanout && l.Count > 0, fmtDur(l.P99)),
		dash(s.CPUPerDelivery > 0, fmt.Sprintf("%.3f", s.CPUPerDelivery/1e3)),
		dash(fanout && d.WireBytes > 0, fmt.Sprintf("%.0f", d.WireBytes)),
		dash(s.DeliveriesPerWrite > 0, fmt.Sprintf("%.1f", s.DeliveriesPerWrite)),
		dash(s.RSSPerConnection > 0, fmtBytes(s.RSSPerConnection)),
		dash(s.RSSEndPerConnection > 0, fmtBytes(s.RSSEndPerConnection)),
		fmtDur(r.Connections.ConnectTime),
		dash(r.Scenario != Idle, fmtDur(r.Connections.ReadyTime)),
		sat)
	return err
}
