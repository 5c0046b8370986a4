package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// TestMain fails if a test leaves goroutines behind. On a Cluster,
// rueidis delays a topology refresh (up to a second) and closes the
// connections a refresh replaced 5s later, from goroutines that sleep and
// may outlive the client: those are expected.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

// prefixes makes a key prefix per broker, so tests sharing a server never
// share channels.
var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("t%d", prefixes.Add(1)) }

// newBroker returns a broker on srv with cfg (URL and, if empty, Prefix
// filled in), not started, closed when tb ends.
func newBroker(tb testing.TB, srv *testredis.Server, cfg Config) *Broker {
	tb.Helper()
	cfg.URL = srv.URL()
	return newBrokerAt(tb, cfg)
}

// newBrokerAt is newBroker for cfg.URL (a Cluster or Sentinel URL).
func newBrokerAt(tb testing.TB, cfg Config) *Broker {
	tb.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = newPrefix()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := New(ctx, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// startBroker returns a broker on srv, started with h.
func startBroker(tb testing.TB, srv *testredis.Server, cfg Config, h broker.EventHandler) *Broker {
	tb.Helper()
	cfg.URL = srv.URL()
	return startBrokerAt(tb, cfg, h)
}

// startBrokerAt is startBroker for cfg.URL (a Cluster or Sentinel URL).
func startBrokerAt(tb testing.TB, cfg Config, h broker.EventHandler) *Broker {
	tb.Helper()
	b := newBrokerAt(tb, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Start(ctx, h); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	brokertest.Run(t, func(t *testing.T) broker.Broker { return newBroker(t, srv, Config{}) })
}

func TestRevocationConformance(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	brokertest.RunRevocations(t, func(t *testing.T) broker.RevocationStore { return newBroker(t, srv, Config{}) })
}

func TestPresenceConformance(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	brokertest.RunPresence(t, func(t *testing.T) broker.PresenceManager { return newBroker(t, srv, Config{}) })
	brokertest.RunPresenceExpiry(t, func(t *testing.T, ttl time.Duration) (a, b broker.PresenceExpirer) {
		cfg := Config{Prefix: newPrefix(), PresenceTTL: ttl}
		return newBroker(t, srv, cfg), newBroker(t, srv, cfg)
	})
}

// checkOffsets fails t unless events are publications with offsets from
// 1 to len(events), in order, all in epoch (if not empty).
func checkOffsets(t *testing.T, what string, events []brokertest.Event, epoch string) {
	t.Helper()
	for i, e := range events {
		want := uint64(i + 1)
		if e.Kind != "pub" || e.Pub.Offset != want || e.Pos.Offset != want || (epoch != "" && e.Pos.Epoch != epoch) {
			t.Fatalf("%s: event %d is %s offset %d at %+v, want publication %d in epoch %q",
				what, i, e.Kind, offsetOf(e), e.Pos, want, epoch)
		}
	}
}

func offsetOf(e brokertest.Event) uint64 {
	if e.Pub == nil {
		return 0
	}
	return e.Pub.Offset
}

func mustPublish(t *testing.T, b *Broker, ch string, data string) protocol.StreamPosition {
	t.Helper()
	pos, err := b.Publish(t.Context(), ch, []byte(data), broker.PublishOptions{HistorySize: 100})
	if err != nil {
		t.Fatalf("Publish(%q): %v", ch, err)
	}
	return pos
}

func mustSubscribe(t *testing.T, b *Broker, channels ...string) {
	t.Helper()
	for _, ch := range channels {
		if err := b.Subscribe(t.Context(), ch); err != nil {
			t.Fatalf("Subscribe(%q): %v", ch, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	ctx := t.Context()
	if _, err := New(ctx, Config{}); err == nil {
		t.Error("New without a URL succeeded")
	}
	if _, err := New(ctx, Config{URL: "redis://127.0.0.1:1/0", Prefix: "a{b}"}); err == nil {
		t.Error("New with braces in the prefix succeeded")
	}
	if _, err := New(ctx, Config{URL: "http://example.com"}); err == nil {
		t.Error("New with a non-Redis URL succeeded")
	}
	srv := testredis.Start(t, testredis.Options{})
	srv.Kill()
	begin := time.Now()
	_, err := New(ctx, Config{URL: srv.URL()})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("New with Redis down: %v, want broker.ErrUnavailable", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("New with Redis down took %v", d)
	}
}

func TestStartAndClose(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	b := newBroker(t, srv, Config{})
	if err := b.Subscribe(t.Context(), "a"); err == nil {
		t.Error("Subscribe before Start succeeded")
	}
	if b.Ready() {
		t.Error("Ready before Start")
	}
	if err := b.Start(t.Context(), nil); err == nil {
		t.Error("Start with a nil handler succeeded")
	}
	if err := b.Start(t.Context(), brokertest.Discard{}); err != nil {
		t.Fatal(err)
	}
	if !b.Ready() {
		t.Error("not Ready after Start")
	}
	if err := b.Start(t.Context(), brokertest.Discard{}); err == nil {
		t.Error("second Start succeeded")
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Subscribe(canceled, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := b.Publish(t.Context(), "", []byte(`1`), broker.PublishOptions{}); err == nil {
		t.Error("Publish to an empty channel name succeeded")
	}
	b.Close()
	if b.Ready() {
		t.Error("Ready after Close")
	}
	if err := b.Start(t.Context(), brokertest.Discard{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Start after Close: %v, want broker.ErrClosed", err)
	}
	if _, err := b.AddPresence(t.Context(), "a", &protocol.ClientInfo{Client: "c"}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("AddPresence after Close: %v, want broker.ErrClosed", err)
	}
	// A broker closed without being started has nothing to wait for.
	if err := newBroker(t, srv, Config{}).Close(); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
}

func TestStartFailsWhenRedisIsGone(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	b := newBroker(t, srv, Config{})
	srv.Kill()
	err := b.Start(t.Context(), brokertest.Discard{})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Start with Redis down: %v, want broker.ErrUnavailable", err)
	}
	if _, err := b.Publish(t.Context(), "a", []byte(`1`), broker.PublishOptions{}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after a failed Start: %v, want broker.ErrClosed", err)
	}
}

func TestKeysAreNamespaced(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	b := startBroker(t, srv, Config{Prefix: "app"}, brokertest.Discard{})
	if _, err := b.Publish(t.Context(), "chat:room", []byte(`{"a":1}`), broker.PublishOptions{HistorySize: 10, HistoryTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddPresence(t.Context(), "chat:room", &protocol.ClientInfo{Client: "c1"}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"app:{chat:room}:s", "app:{chat:room}:m", "app:{chat:room}:p", "app:{chat:room}:z", "app:{chat:room}:c"} {
		if n, err := srv.Do(t.Context(), "EXISTS", key); err != nil || n != "1" {
			t.Errorf("EXISTS %s: %q, %v; want 1", key, n, err)
		}
		pttl, err := srv.Do(t.Context(), "PTTL", key)
		if ms, _ := strconv.Atoi(pttl); err != nil || ms <= 0 {
			t.Errorf("PTTL %s: %q, %v; want a TTL", key, pttl, err)
		}
	}
	if n, err := srv.Do(t.Context(), "DBSIZE"); err != nil || n != "5" {
		t.Errorf("DBSIZE: %q, %v; want the 5 keys of the channel", n, err)
	}
}

func clientInfo(id string) *protocol.ClientInfo {
	return &protocol.ClientInfo{Client: id, User: "u-" + id, Info: fmt.Appendf(nil, `{"name":%q}`, id)}
}

// TestCloseStopsEverything checks that Close waits for every goroutine the
// broker and its Redis client started, and that the handler is not called
// once Close returned, even while another node keeps publishing.
func TestCloseStopsEverything(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	ignore := goleak.IgnoreCurrent() // the server's
	pub := startBroker(t, srv, Config{Prefix: "close"}, brokertest.Discard{})
	h := &countHandler{}
	a := startBroker(t, srv, Config{Prefix: "close"}, h)
	mustSubscribe(t, a, "a", "b")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pub.Publish(context.Background(), "a", []byte(`{}`), broker.PublishOptions{HistorySize: 10}); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
		}
	})
	brokertest.WaitFor(t, "deliveries", func() bool { return h.n.Load() >= 50 })
	a.Close()
	delivered := h.n.Load()
	brokertest.WaitFor(t, "more publications after Close", func() bool {
		res, err := pub.History(t.Context(), "a", broker.HistoryOptions{})
		return err == nil && res.Position.Offset > uint64(delivered)+50
	})
	close(stop)
	wg.Wait()
	if got := h.n.Load(); got != delivered {
		t.Errorf("%d publications delivered after Close returned", got-delivered)
	}
	pub.Close()
	goleak.VerifyNone(t, ignore)
}

// countHandler counts publications.
type countHandler struct {
	brokertest.Discard
	n atomic.Int64
}

func (h *countHandler) HandlePublication(context.Context, string, *protocol.Publication, protocol.StreamPosition) {
	h.n.Add(1)
}

// TestChannels lists the channels some broker on the Redis subscribes to,
// under its own prefix only.
func TestChannels(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	a := startBroker(t, srv, Config{Prefix: "app*"}, brokertest.Discard{})
	b := startBroker(t, srv, Config{Prefix: "app*"}, brokertest.Discard{})
	other := startBroker(t, srv, Config{Prefix: "appx"}, brokertest.Discard{})
	mustSubscribe(t, a, "chat:1", "lobby")
	mustSubscribe(t, b, "chat:2")
	mustSubscribe(t, other, "chat:3")
	got, err := a.Channels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	got = slices.DeleteFunc(got, func(ch string) bool { return strings.HasPrefix(ch, "!probe") })
	if want := []string{"chat:1", "chat:2", "lobby"}; !slices.Equal(got, want) {
		t.Fatalf("Channels() = %v, want %v", got, want)
	}
}

// TestPublishMany publishes a batch across channels in one pipeline: each
// gets the next offset of its channel, in request order, and is delivered
// like any publication.
func TestPublishMany(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	testPublishMany(t, Config{URL: srv.URL()}, []string{"a", "b", "c"})
}

// TestPublishManyAfterScriptsLost publishes batches after Redis lost its
// scripts (SCRIPT FLUSH, as after a restart without them): the batch is
// answered NOSCRIPT, the scripts are loaded again and it runs, in order;
// history batches recover the same way. INFO commandstats shows no SCRIPT
// LOAD per batch otherwise.
func TestPublishManyAfterScriptsLost(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	cfg := Config{URL: srv.URL()}
	b := newBroker(t, srv, cfg)
	for round := range 2 {
		if _, err := srv.Do(t.Context(), "SCRIPT", "FLUSH"); err != nil {
			t.Fatal(err)
		}
		var reqs []broker.PublishRequest
		for i := range 20 {
			reqs = append(reqs, broker.PublishRequest{Channel: []string{"a", "b"}[i%2], Data: []byte("1"), Options: broker.PublishOptions{HistorySize: 100}})
		}
		for i, r := range b.PublishMany(t.Context(), reqs) {
			if want := uint64(round*10 + i/2 + 1); r.Err != nil || r.Position.Offset != want {
				t.Fatalf("round %d, publish %d after SCRIPT FLUSH: %+v, want offset %d", round, i, r, want)
			}
		}
	}
	if _, err := srv.Do(t.Context(), "SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	calls := []historyCall{{channel: "x"}, {channel: "y"}}
	if _, errs := b.historyMany(t.Context(), calls); errs[0] != nil || errs[1] != nil {
		t.Fatalf("history after SCRIPT FLUSH: %v", errs)
	}
	before := scriptLoads(t, srv)
	testPublishMany(t, cfg, []string{"d", "e"})
	if n := scriptLoads(t, srv) - before; n != 2*len(allScripts) {
		t.Fatalf("%d SCRIPT LOADs for two new brokers and one batch, want %d (the brokers' own)", n, 2*len(allScripts))
	}
}

// scriptLoads returns how many SCRIPT LOADs Redis served.
func scriptLoads(t *testing.T, srv *testredis.Server) int {
	t.Helper()
	info, err := srv.Do(t.Context(), "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, "cmdstat_script|load:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func testPublishMany(t *testing.T, cfg Config, chans []string) {
	cfg.Prefix = newPrefix()
	rec := brokertest.NewRecorder()
	sub := startBrokerAt(t, cfg, rec)
	pub := startBrokerAt(t, cfg, brokertest.Discard{})
	mustSubscribe(t, sub, chans...)
	var reqs []broker.PublishRequest
	for i := range 30 {
		reqs = append(reqs, broker.PublishRequest{Channel: chans[i%len(chans)], Data: fmt.Appendf(nil, "%d", i), Options: broker.PublishOptions{HistorySize: 100}})
	}
	results := pub.PublishMany(t.Context(), reqs)
	next := map[string]uint64{}
	for i, r := range results {
		ch := reqs[i].Channel
		next[ch]++
		if r.Err != nil || r.Position.Offset != next[ch] {
			t.Fatalf("request %d to %s: %+v, want offset %d", i, ch, r, next[ch])
		}
	}
	for _, ch := range chans {
		events := rec.Wait(t, ch, 30/len(chans))
		checkOffsets(t, ch, events, results[slices.Index(chans, ch)].Position.Epoch)
	}
}
