package test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// scrape reads the server's /metrics (failing unless it is the Prometheus
// text format) and returns every sample by its name with its labels as
// written ("redcast_pushes_total", `redcast_publications_total{source="client"}`,
// a histogram as its _count and _sum).
func scrape(t *testing.T, httpBase string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, httpBase+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: not the Prometheus text format: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := ""
			if len(labels) > 0 {
				key = "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name+key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name+key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count"+key] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+key] = m.GetHistogram().GetSampleSum()
			case m.Untyped != nil:
				out[name+key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// TestMetrics: the counters of /metrics move as clients connect,
// subscribe, publish, receive, recover and leave.
func TestMetrics(t *testing.T) {
	wsBase, httpBase := startAPIServer(t, redcast.Config{})
	ctx := testContext(t)
	m := scrape(t, httpBase)
	for _, name := range []string{
		"redcast_connections", "redcast_connections_opened_total", `redcast_connections_closed_total{code="3002"}`,
		"redcast_subscriptions", "redcast_channels", `redcast_publications_total{source="api"}`, "redcast_pushes_total",
		"redcast_push_bytes_total", "redcast_slow_consumers_total", `redcast_recoveries_total{result="failed"}`,
		`redcast_command_duration_seconds_count{method="publish"}`, "redcast_broker_publish_duration_seconds_count",
		"go_goroutines", "process_resident_memory_bytes",
		`redcast_wire_bytes_total{compression="none",transport="websocket"}`,
		`redcast_wire_bytes_total{compression="deflate",transport="websocket"}`,
		`redcast_wire_bytes_total{compression="none",transport="sse"}`,
	} {
		if _, ok := m[name]; !ok {
			t.Errorf("metric %s missing before any traffic", name)
		}
	}

	const subscribers, pubs = 3, 5
	conns := make([]*conn, subscribers)
	for i := range conns {
		conns[i] = dial(t, wsBase, "m")
		if _, err := conns[i].Subscribe(ctx, "chat:m", client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conns[0].Subscribe(ctx, "chat:n", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	publishN(t, conns[0], "chat:m", pubs)
	apiOK(t, httpBase, "publish", map[string]any{"channel": "chat:m", "data": "x"}, nil)
	for _, c := range conns {
		c.waitPubs(t, "chat:m", pubs+1)
	}
	// Recovery from a position in another epoch fails explicitly.
	if _, err := conns[1].Subscribe(ctx, "chat:r", client.SubscribeOptions{Since: &protocol.StreamPosition{Offset: 1, Epoch: "gone"}}); err != nil {
		t.Fatal(err)
	}

	m = scrape(t, httpBase)
	for name, want := range map[string]float64{
		"redcast_connections":                                        subscribers,
		"redcast_connections_opened_total":                           subscribers,
		"redcast_subscriptions":                                      subscribers + 2,
		"redcast_channels":                                           3,
		`redcast_publications_total{source="client"}`:                pubs,
		`redcast_publications_total{source="api"}`:                   1,
		`redcast_recoveries_total{result="failed"}`:                  1,
		`redcast_command_duration_seconds_count{method="publish"}`:   pubs,
		`redcast_command_duration_seconds_count{method="subscribe"}`: subscribers + 2,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	// At least the publications went out (joins only to those who asked).
	if got := m["redcast_pushes_total"]; got < subscribers*(pubs+1) {
		t.Errorf("redcast_pushes_total = %v, want at least %d", got, subscribers*(pubs+1))
	}
	if m["redcast_push_bytes_total"] < m["redcast_pushes_total"]*10 {
		t.Errorf("redcast_push_bytes_total = %v for %v pushes", m["redcast_push_bytes_total"], m["redcast_pushes_total"])
	}
	// What went on the wire: the pushes and replies, with frame headers.
	if wire := m[`redcast_wire_bytes_total{compression="none",transport="websocket"}`]; wire < m["redcast_push_bytes_total"] {
		t.Errorf("redcast_wire_bytes_total (websocket) = %v, less than the %v bytes of pushes", wire, m["redcast_push_bytes_total"])
	}
	if m[`redcast_publication_bytes_total{source="client"}`] != float64(pubs*len(`{"n":1}`)) {
		t.Errorf("publication bytes = %v", m[`redcast_publication_bytes_total{source="client"}`])
	}

	conns[2].Close()
	// A scrape reads the gauges one at a time: it can read the
	// subscriptions before the close released them and the connections
	// after. Wait for both.
	waitFor(t, "a closed connection and its subscription in the metrics", func() bool {
		m = scrape(t, httpBase)
		return m[`redcast_connections_closed_total{code="client"}`] == 1 && m["redcast_connections"] == subscribers-1 &&
			m["redcast_subscriptions"] == subscribers+1
	})
}
