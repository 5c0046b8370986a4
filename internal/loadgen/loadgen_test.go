package loadgen_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/internal/loadgen"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer serves a node with cfg on a random local port and returns
// its base URL; it is shut down when the test ends.
func startServer(t *testing.T, cfg redcast.Config) string {
	t.Helper()
	addr, _ := testserver.Start(t, server.Config{Node: cfg})
	return "ws://" + addr
}

func run(t *testing.T, opts loadgen.Options) *loadgen.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	rep, err := loadgen.Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	return rep
}

// checkFanout checks that a fanout run's counts add up: every subscriber
// connected and received every acknowledged measured publication once.
func checkFanout(t *testing.T, rep *loadgen.Report, subscribers int) {
	t.Helper()
	c, p, d, l := rep.Connections, rep.Publishes, rep.Deliveries, rep.Latency
	if c.OK != subscribers || c.Failed != 0 || c.Disconnected != 0 || c.NotReady != 0 {
		t.Errorf("connections %+v, want %d ok and no failure", c, subscribers)
	}
	if p.Sent == 0 || p.Acked != p.Sent || p.Failed != 0 || p.Unacked != 0 || p.PublishersLost != 0 {
		t.Errorf("publishes %+v, want all acknowledged", p)
	}
	if d.Expected == 0 || d.Received != d.Expected || d.Lost != 0 || d.Duplicates != 0 || d.Malformed != 0 {
		t.Errorf("deliveries %+v, want expected == received > 0", d)
	}
	if rep.Channels == 1 && d.Expected != p.Acked*int64(subscribers) {
		t.Errorf("expected %d deliveries for %d publications to %d subscribers", d.Expected, p.Acked, subscribers)
	}
	if l.Count != d.Received || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
		t.Errorf("latency %+v for %d deliveries", l, d.Received)
	}
	if d.PerSecond <= 0 || p.PerSecond <= 0 || rep.Window <= 0 {
		t.Errorf("throughput %v over %v", d.PerSecond, rep.Window)
	}
}

func TestFanoutProtocol(t *testing.T) {
	base := startServer(t, redcast.Config{})
	rep := run(t, loadgen.Options{
		URL:         base,
		Subscribers: 30,
		Channels:    3,
		Publishers:  2,
		Rate:        1000,
		Duration:    300 * time.Millisecond,
		Warmup:      50 * time.Millisecond,
		ServerPID:   os.Getpid(),
	})
	checkFanout(t, rep, 30)
	if rep.Mode != "protocol" || rep.Server == nil || rep.Server.RSSConnected == 0 || rep.Server.Error != "" {
		t.Errorf("mode %q, server %+v", rep.Mode, rep.Server)
	}
}

// Pusher protocol subscribers of a Pusher app whose channels' namespace
// lets the benchmark's publishers publish.
func TestFanoutPusher(t *testing.T) {
	ns := auth.DefaultNamespaces()
	ns["pusher"] = auth.Namespace{Anonymous: true, Subscribe: auth.SubscribePublic, Publish: true, HistorySize: 10, HistoryTTL: time.Minute}
	addr, _ := testserver.Start(t, server.Config{Node: redcast.Config{Namespaces: ns},
		Pusher: pusher.Config{Apps: []pusher.App{{ID: "1", Key: "bench-key", Secret: "s"}}}})
	rep := run(t, loadgen.Options{
		URL:         "ws://" + addr,
		PusherKey:   "bench-key",
		Subscribers: 20,
		Channels:    2,
		Publishers:  2,
		Rate:        1000,
		Duration:    300 * time.Millisecond,
		Warmup:      -1,
	})
	checkFanout(t, rep, 20)
	if rep.Mode != "pusher" {
		t.Errorf("mode %q, want pusher", rep.Mode)
	}
}

func TestFanoutPlain(t *testing.T) {
	base := startServer(t, redcast.Config{})
	rep := run(t, loadgen.Options{
		URL:         base,
		PlainRoom:   "bench",
		Subscribers: 20,
		Channels:    2,
		Publishers:  2,
		Rate:        1000,
		MessageSize: 200,
		Duration:    300 * time.Millisecond,
		Warmup:      -1,
	})
	checkFanout(t, rep, 20)
	if rep.Mode != "plain" {
		t.Errorf("mode %q", rep.Mode)
	}
}

// TestFanoutAsFastAsPossible publishes without a rate, on a server without
// a publish limit, from spread source addresses, with messages larger than
// one frame of pipelined commands holds.
func TestFanoutAsFastAsPossible(t *testing.T) {
	base := startServer(t, redcast.Config{PublishRate: -1})
	for _, plain := range []string{"", "fast"} {
		t.Run("plain="+plain, func(t *testing.T) {
			rep := run(t, loadgen.Options{
				URL:         base,
				PlainRoom:   plain,
				Subscribers: 10,
				InFlight:    16,
				MessageSize: 8 << 10,
				// Long enough for the window to see publications sent:
				// the publisher sends only as replies free its 16 slots,
				// and on a loaded 2-core machine the replies to the 16
				// sent before the window took over 200ms.
				Duration:    time.Second,
				Warmup:      -1,
				SourceAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
			})
			checkFanout(t, rep, 10)
		})
	}
}

func TestIdle(t *testing.T) {
	base := startServer(t, redcast.Config{})
	rep := run(t, loadgen.Options{
		URL:         base,
		Scenario:    loadgen.Idle,
		Subscribers: 50,
		Duration:    50 * time.Millisecond,
		ServerPID:   os.Getpid(),
	})
	c := rep.Connections
	if c.OK != 50 || c.Failed != 0 || c.Disconnected != 0 || c.ConnectTime <= 0 {
		t.Errorf("connections %+v", c)
	}
	if s := rep.Server; s == nil || s.RSSBefore == 0 || s.RSSConnected == 0 || s.RSSEnd == 0 {
		t.Errorf("server %+v", s)
	}
	if rep.Publishes.Total != 0 || rep.Deliveries.Received != 0 {
		t.Errorf("an idle run published: %+v %+v", rep.Publishes, rep.Deliveries)
	}
}

func TestStorm(t *testing.T) {
	base := startServer(t, redcast.Config{})
	for _, plain := range []string{"", "storm"} {
		t.Run("plain="+plain, func(t *testing.T) {
			rep := run(t, loadgen.Options{
				URL:         base,
				PlainRoom:   plain,
				Scenario:    loadgen.Storm,
				Subscribers: 200,
				Channels:    4,
			})
			c := rep.Connections
			if c.OK != 200 || c.Failed != 0 || c.NotReady != 0 || c.Disconnected != 0 || c.ConnectTime <= 0 || c.ReadyTime <= 0 {
				t.Errorf("connections %+v", c)
			}
		})
	}
}

// TestNoServer reports every connection as failed.
func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rep, err := loadgen.Run(t.Context(), loadgen.Options{URL: "ws://" + addr, Subscribers: 3})
	if !errors.Is(err, loadgen.ErrNoConnection) {
		t.Fatalf("Run against a closed port: %v", err)
	}
	if rep.Connections.Failed != 3 || len(rep.Connections.Errors) != 1 {
		t.Errorf("connections %+v", rep.Connections)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []loadgen.Options{
		{URL: "http://127.0.0.1:1"},
		{URL: "ws://"},
		{Scenario: "nope"},
		{Rate: -1},
		{SourceAddrs: []netip.Addr{{}}},
	} {
		if _, err := loadgen.Run(t.Context(), o); !errors.Is(err, loadgen.ErrOptions) {
			t.Errorf("Run(%+v) = %v, want ErrOptions", o, err)
		}
	}
}

// TestCancel ends a run when its context ends.
func TestCancel(t *testing.T) {
	base := startServer(t, redcast.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	logs := &cancelAt{cancel: cancel, msg: "measuring"}
	_, err := loadgen.Run(ctx, loadgen.Options{URL: base, Subscribers: 5, Rate: 100, Duration: time.Hour, Warmup: -1, Logger: logs.logger()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}
