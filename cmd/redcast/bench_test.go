package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redcast/redcast/internal/loadgen"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
)

// startBenchServer serves a default node on a random local port and
// returns its base URL; it is shut down when the test ends.
func startBenchServer(t *testing.T) string {
	t.Helper()
	addr, _ := testserver.Start(t, server.Config{})
	return "ws://" + addr
}

func TestBenchJSON(t *testing.T) {
	base := startBenchServer(t)
	env := map[string]string{"REDCAST_SUBSCRIBERS": "8", "REDCAST_URL": "ws://127.0.0.1:1"}
	var out, logs strings.Builder
	err := runBench(t.Context(), []string{"--url", base, "--plain-room", "cli", "--channels", "2", "--rate", "500",
		"--duration", "200ms", "--warmup", "0", "--source-addrs", "2", "--json"},
		func(k string) string { return env[k] }, &out, &logs)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, logs.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	d := rep.Deliveries
	if rep.Scenario != loadgen.Fanout || rep.Mode != "plain" || rep.Subscribers != 8 || rep.Connections.OK != 8 ||
		d.Expected == 0 || d.Received != d.Expected || d.Lost != 0 || rep.Latency.P99 <= 0 {
		t.Errorf("report %s", out.String())
	}
	if !strings.Contains(logs.String(), "measuring") {
		t.Errorf("no progress on stderr: %q", logs.String())
	}
}

func TestBenchText(t *testing.T) {
	base := startBenchServer(t)
	var out strings.Builder
	err := runBench(t.Context(), []string{"--url", base, "--scenario", "idle", "--subscribers", "5", "--duration", "10ms", "--log-level", "warn"},
		func(string) string { return "" }, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "scenario      idle, full protocol") || !strings.Contains(out.String(), "5 ok, 0 failed") {
		t.Errorf("text report:\n%s", out.String())
	}
}

func TestBenchFlags(t *testing.T) {
	none := func(string) string { return "" }
	var out strings.Builder
	if err := runBench(t.Context(), []string{"--help"}, none, &out, &out); err != nil || !strings.Contains(out.String(), "--server-pid") {
		t.Errorf("--help: %v\n%s", err, out.String())
	}
	for _, args := range [][]string{
		{"--scenario", "nope"},
		{"--source-addrs", "300"},
		{"--source-addrs", "127.0.0.1,nope"},
		{"--url", "http://x"},
		{"--log-level", "loud"},
		{"extra"},
	} {
		if err := runBench(t.Context(), args, none, &out, &out); err == nil {
			t.Errorf("bench %v succeeded", args)
		}
	}
}

func TestParseSourceAddrs(t *testing.T) {
	got, err := parseSourceAddrs("3")
	want := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("3: %v, %v", got, err)
	}
	got, err = parseSourceAddrs("127.0.0.5, ::1")
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("127.0.0.5"), netip.IPv6Loopback()}) {
		t.Errorf("list: %v, %v", got, err)
	}
	if got, err := parseSourceAddrs(""); got != nil || err != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
}

// TestBenchQuickRow runs what scripts/bench --quick runs for one scenario:
// a tiny fan-out that prints a row of the table and writes the JSON report.
func TestBenchQuickRow(t *testing.T) {
	base := startBenchServer(t)
	jsonOut := filepath.Join(t.TempDir(), "s1.json")
	var out, logs strings.Builder
	err := runBench(t.Context(), []string{"--url", base, "--quick", "--row", "s1-quick", "--json-out", jsonOut, "--log-level", "warn"},
		func(string) string { return "" }, &out, &logs)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, logs.String())
	}
	if f := strings.Fields(out.String()); len(f) < 6 || f[0] != "s1-quick" || f[1] != "20" || f[3] != "0" {
		t.Errorf("row %q: want s1-quick, 20 connections, 0 lost", out.String())
	}
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadgen.Report
	if err := json.Unmarshal(b, &rep); err != nil || rep.Subscribers != 20 || rep.Rate != 200 {
		t.Errorf("--json-out report: %v\n%s", err, b)
	}
	out.Reset()
	if err := runBench(t.Context(), []string{"--row-header"}, func(string) string { return "" }, &out, &logs); err != nil ||
		!strings.HasPrefix(out.String(), "scenario ") {
		t.Errorf("--row-header: %v %q", err, out.String())
	}
}
