package redis

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// TestNodesShareChannels runs three brokers (three nodes) on one Redis with
// concurrent publishers on every node: every node receives every
// publication once, in offset order, with the same data.
func TestNodesShareChannels(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	// 900 publishes at once from 9 goroutines: a loaded machine may take
	// longer than the default second for one.
	cfg := Config{Prefix: newPrefix(), Timeout: 5 * time.Second}
	const nodes, publishers, each = 3, 3, 100
	brokers := make([]*Broker, nodes)
	recs := make([]*brokertest.Recorder, nodes)
	for i := range brokers {
		recs[i] = brokertest.NewRecorder()
		brokers[i] = startBroker(t, srv, cfg, recs[i])
		mustSubscribe(t, brokers[i], "room")
	}
	var wg sync.WaitGroup
	for _, b := range brokers {
		for p := range publishers {
			wg.Go(func() {
				for i := range each {
					data := fmt.Appendf(nil, `{"p":%d,"i":%d,"text":"<b>é & ü</b>"}`, p, i)
					if _, err := b.Publish(t.Context(), "room", data, broker.PublishOptions{HistorySize: 1000}); err != nil {
						t.Errorf("Publish: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	const total = nodes * publishers * each
	first := recs[0].Wait(t, "room", total)
	checkOffsets(t, "node 0", first, first[0].Pos.Epoch)
	for i, rec := range recs[1:] {
		got := rec.Wait(t, "room", total)
		checkOffsets(t, fmt.Sprintf("node %d", i+1), got, first[0].Pos.Epoch)
		for j := range got {
			if !bytes.Equal(got[j].Pub.Data, first[j].Pub.Data) {
				t.Fatalf("node %d, offset %d: data %s, node 0 got %s", i+1, j+1, got[j].Pub.Data, first[j].Pub.Data)
			}
		}
	}
	// History is the same whichever node is asked.
	res, err := brokers[2].History(t.Context(), "room", broker.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Publications) != total || res.Position.Offset != total {
		t.Fatalf("history: %d publications at %+v, want %d", len(res.Publications), res.Position, total)
	}
	for i, p := range res.Publications {
		if !bytes.Equal(p.Data, first[i].Pub.Data) {
			t.Fatalf("history offset %d: %s, delivered %s", i+1, p.Data, first[i].Pub.Data)
		}
	}
	// Joins and leaves travel with the publications.
	ann := &protocol.ClientInfo{Client: "c1", User: "ann", Info: []byte(`{"name":"Ann"}`)}
	if err := brokers[0].PublishJoin(t.Context(), "room", ann); err != nil {
		t.Fatal(err)
	}
	if err := brokers[0].PublishLeave(t.Context(), "room", ann); err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		events := rec.Wait(t, "room", total+2)
		join, leave := events[total], events[total+1]
		if join.Kind != "join" || leave.Kind != "leave" || join.Info.Client != "c1" || leave.Info.User != "ann" ||
			string(join.Info.Info) != `{"name":"Ann"}` {
			t.Errorf("node %d: got %s of %+v and %s of %+v, want join and leave of %+v", i, join.Kind, join.Info, leave.Kind, leave.Info, ann)
		}
	}
}

// TestPrefixesIsolate runs two deployments on one Redis.
func TestPrefixesIsolate(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	recA, recB := brokertest.NewRecorder(), brokertest.NewRecorder()
	a := startBroker(t, srv, Config{Prefix: "a"}, recA)
	b := startBroker(t, srv, Config{Prefix: "b"}, recB)
	mustSubscribe(t, a, "room")
	mustSubscribe(t, b, "room")
	mustPublish(t, a, "room", `1`)
	mustPublish(t, a, "room", `2`)
	if pos := mustPublish(t, b, "room", `1`); pos.Offset != 1 {
		t.Errorf("first publication of prefix b at offset %d, want 1", pos.Offset)
	}
	// A second publication of b on the same channel is delivered after
	// anything of a that could have leaked into it (one channel, one worker,
	// in order): b must see exactly its own two.
	mustPublish(t, b, "room", `2`)
	recA.Wait(t, "room", 2)
	recB.Wait(t, "room", 2)
	if n := recB.Count("room"); n != 2 {
		t.Errorf("prefix b got %d publications, want only its own 2", n)
	}
}

var cmdstatCalls = regexp.MustCompile(`cmdstat_(\w+):calls=(\d+)`)

// commandCalls returns how often Redis ran each command since the last
// CONFIG RESETSTAT.
func commandCalls(t *testing.T, srv *testredis.Server) map[string]int {
	t.Helper()
	info, err := srv.Do(t.Context(), "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, m := range cmdstatCalls.FindAllStringSubmatch(info, -1) {
		calls[m[1]], _ = strconv.Atoi(m[2])
	}
	return calls
}

// infoField returns a field of INFO's output.
func infoField(t *testing.T, srv *testredis.Server, section, field string) string {
	t.Helper()
	info, err := srv.Do(t.Context(), "INFO", section)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:(\S*)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("INFO %s has no %s", section, field)
	}
	return m[1]
}

// TestSubscribeBurstIsBatched subscribes 2000 channels at once and counts
// the SUBSCRIBE commands Redis ran; then the same for unsubscribing.
func TestSubscribeBurstIsBatched(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	rec := brokertest.NewRecorder()
	b := startBroker(t, srv, Config{}, rec)
	pub := startBroker(t, srv, Config{Prefix: b.cfg.Prefix}, brokertest.Discard{})
	if _, err := srv.Do(t.Context(), "CONFIG", "RESETSTAT"); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	channel := func(i int) string { return "burst:" + strconv.Itoa(i) }
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := b.Subscribe(t.Context(), channel(i)); err != nil {
				t.Errorf("Subscribe: %v", err)
			}
		})
	}
	wg.Wait()
	calls := commandCalls(t, srv)
	t.Logf("%d Subscribe calls: %d SUBSCRIBE commands, %d EVALSHA", n, calls["subscribe"], calls["evalsha"])
	if calls["subscribe"] == 0 || calls["subscribe"] > 20 {
		t.Errorf("%d Subscribe calls sent %d SUBSCRIBE commands, want a few", n, calls["subscribe"])
	}
	// Each of the two brokers has its probe channel too.
	const probes = 2
	if got := infoField(t, srv, "stats", "pubsub_channels"); got != strconv.Itoa(n+probes) {
		t.Errorf("Redis has %s pub/sub channels, want %d", got, n+probes)
	}
	// Every channel is live.
	for _, i := range []int{0, n / 2, n - 1} {
		mustPublish(t, pub, channel(i), `{}`)
		rec.Wait(t, channel(i), 1)
	}

	if _, err := srv.Do(t.Context(), "CONFIG", "RESETSTAT"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		wg.Go(func() {
			if err := b.Unsubscribe(t.Context(), channel(i)); err != nil {
				t.Errorf("Unsubscribe: %v", err)
			}
		})
	}
	wg.Wait()
	brokertest.WaitFor(t, "Redis to have only the probe channels", func() bool {
		return infoField(t, srv, "stats", "pubsub_channels") == strconv.Itoa(probes)
	})
	calls = commandCalls(t, srv)
	t.Logf("%d Unsubscribe calls: %d UNSUBSCRIBE commands", n, calls["unsubscribe"])
	if calls["unsubscribe"] > 20 {
		t.Errorf("%d Unsubscribe calls sent %d UNSUBSCRIBE commands, want a few", n, calls["unsubscribe"])
	}
}

// TestSubscribeFlapping unsubscribes and subscribes again at once: the
// channel stays live and nothing is delivered twice.
func TestSubscribeFlapping(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	rec := brokertest.NewRecorder()
	b := startBroker(t, srv, Config{}, rec)
	for range 20 {
		mustSubscribe(t, b, "a")
		if err := b.Unsubscribe(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	mustSubscribe(t, b, "a")
	pos := mustPublish(t, b, "a", `1`)
	mustPublish(t, b, "a", `2`)
	checkOffsets(t, "after flapping", rec.Wait(t, "a", 2), pos.Epoch)
	mustSubscribe(t, b, "marker")
	mustPublish(t, b, "marker", `1`)
	rec.Wait(t, "marker", 1)
	if n := rec.Count("a"); n != 2 {
		t.Errorf("got %d publications, want 2", n)
	}
}
