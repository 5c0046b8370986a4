package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// fastReconnect is a Config that reconnects quickly, for outage tests.
func fastReconnect(prefix string) Config {
	return Config{Prefix: prefix, MinReconnectDelay: time.Millisecond, MaxReconnectDelay: 20 * time.Millisecond}
}

// publishEventually publishes, retrying while Redis is unavailable (a
// client notices a restarted server on its next call), and returns the
// publication's position.
func publishEventually(t *testing.T, b *Broker, ch, data string) protocol.StreamPosition {
	t.Helper()
	var pos protocol.StreamPosition
	brokertest.WaitFor(t, "a publication to succeed", func() bool {
		var err error
		pos, err = b.Publish(t.Context(), ch, []byte(data), broker.PublishOptions{HistorySize: 100})
		if err != nil && !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("Publish: %v", err)
		}
		return err == nil
	})
	return pos
}

// TestOutageFilledFromHistory kills Redis (with AOF) under a node and,
// while that node is disconnected, publishes from another node: once the
// node is back, it delivers what it missed from history, in order, before
// newer publications, with no gap and no duplicate. A channel that had no
// publication before the outage is covered too.
func TestOutageFilledFromHistory(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{AppendOnly: true})
	cfg := fastReconnect(newPrefix())
	rec := brokertest.NewRecorder()
	a := newBroker(t, srv, cfg)
	down, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.testHookReconnect = func() { once.Do(func() { close(down); <-release }) }
	if err := a.Start(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, srv, cfg, brokertest.Discard{})

	mustSubscribe(t, a, "busy", "quiet")
	var epoch string
	for i := 1; i <= 3; i++ {
		epoch = mustPublish(t, b, "busy", fmt.Sprint(i)).Epoch
	}
	rec.Wait(t, "busy", 3)

	srv.Kill()
	select {
	case <-down:
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not notice that Redis is gone")
	}
	if a.Ready() {
		t.Error("Ready while the pub/sub connection is down")
	}
	srv.Restart()
	for i := 4; i <= 6; i++ {
		publishEventually(t, b, "busy", fmt.Sprint(i))
	}
	publishEventually(t, b, "quiet", "1")
	publishEventually(t, b, "quiet", "2")
	close(release)

	brokertest.WaitFor(t, "the node to be ready again", a.Ready)
	checkOffsets(t, "busy, after the outage", rec.Wait(t, "busy", 6), epoch)
	rec.Wait(t, "quiet", 2)
	quiet := rec.Events("quiet")
	checkOffsets(t, "quiet, after the outage", quiet, quiet[0].Pos.Epoch)
	mustPublish(t, b, "busy", "7")
	events := rec.Wait(t, "busy", 7)
	checkOffsets(t, "busy, live again", events, epoch)
	for i, e := range events {
		if want := fmt.Sprint(i + 1); string(e.Pub.Data) != want {
			t.Errorf("offset %d: data %q, want %q", i+1, e.Pub.Data, want)
		}
	}
	mustPublish(t, b, "quiet", "3")
	mustSubscribe(t, a, "marker")
	mustPublish(t, b, "marker", "1")
	rec.Wait(t, "marker", 1)
	if n := rec.Count("busy"); n != 7 {
		t.Errorf("busy got %d publications, want 7", n)
	}
}

// TestReconnectsAfterRestart restarts Redis without any hook: the node
// reconnects with backoff by itself and resubscribes every channel.
func TestReconnectsAfterRestart(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{AppendOnly: true})
	cfg := fastReconnect(newPrefix())
	rec := brokertest.NewRecorder()
	a := startBroker(t, srv, cfg, rec)
	mustSubscribe(t, a, "x", "y")
	pos := mustPublish(t, a, "x", "1")
	rec.Wait(t, "x", 1)
	srv.Kill()
	brokertest.WaitFor(t, "the node to notice that Redis is gone", func() bool { return !a.Ready() })
	srv.Restart()
	brokertest.WaitFor(t, "the node to be ready again", a.Ready)
	publishEventually(t, a, "x", "2")
	publishEventually(t, a, "y", "1")
	checkOffsets(t, "x", rec.Wait(t, "x", 2), pos.Epoch)
	rec.Wait(t, "y", 1)
}

// TestRestartWithoutPersistenceChangesEpoch restarts Redis without
// persistence: the channel's history is gone and its next publications get
// a new epoch. Those made while the node was disconnected are delivered
// once it is back (from the new epoch's history), so that its subscribers
// see the change; live ones follow.
func TestRestartWithoutPersistenceChangesEpoch(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	cfg := fastReconnect(newPrefix())
	rec := brokertest.NewRecorder()
	a := newBroker(t, srv, cfg)
	down, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.testHookReconnect = func() { once.Do(func() { close(down); <-release }) }
	if err := a.Start(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, srv, cfg, brokertest.Discard{})
	mustSubscribe(t, a, "c")
	mustPublish(t, b, "c", "1")
	old := mustPublish(t, b, "c", "2")
	rec.Wait(t, "c", 2)

	srv.Kill()
	select {
	case <-down:
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not notice that Redis is gone")
	}
	srv.Restart()
	publishEventually(t, b, "c", "new 1")
	res, err := b.History(t.Context(), "c", broker.HistoryOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Position.Epoch == old.Epoch || res.Position.Offset != 1 || len(res.Publications) != 1 {
		t.Fatalf("after a restart without persistence: %d publications at %+v, want 1 at offset 1 in a new epoch (old %q)",
			len(res.Publications), res.Position, old.Epoch)
	}
	close(release)
	brokertest.WaitFor(t, "the node to be ready again", a.Ready)
	mustPublish(t, b, "c", "new 2")
	events := rec.Wait(t, "c", 4)
	checkOffsets(t, "the new epoch", events[2:], res.Position.Epoch)
	if got := string(events[2].Pub.Data) + "," + string(events[3].Pub.Data); got != "new 1,new 2" {
		t.Errorf("delivered %s in the new epoch, want new 1,new 2", got)
	}
}

// TestFailFastWhileDown checks that calls fail at once, with
// broker.ErrUnavailable, while Redis is unreachable, and work again after.
func TestFailFastWhileDown(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	a := startBroker(t, srv, fastReconnect(newPrefix()), brokertest.Discard{})
	mustSubscribe(t, a, "a")
	srv.Kill()
	brokertest.WaitFor(t, "the node to notice that Redis is gone", func() bool { return !a.Ready() })
	ctx := t.Context()
	calls := map[string]func() error{
		"Publish": func() error {
			_, err := a.Publish(ctx, "a", []byte(`1`), broker.PublishOptions{HistorySize: 10})
			return err
		},
		"History": func() error {
			_, err := a.History(ctx, "a", broker.HistoryOptions{Limit: -1})
			return err
		},
		"Subscribe":   func() error { return a.Subscribe(ctx, "b") },
		"PublishJoin": func() error { return a.PublishJoin(ctx, "a", clientInfo("c1")) },
		"AddPresence": func() error {
			_, err := a.AddPresence(ctx, "a", clientInfo("c1"))
			return err
		},
		"Presence": func() error {
			_, err := a.Presence(ctx, "a")
			return err
		},
	}
	for name, call := range calls {
		begin := time.Now()
		err := call()
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("%s while Redis is down: %v, want broker.ErrUnavailable", name, err)
		}
		if d := time.Since(begin); d > 2*a.cfg.Timeout {
			t.Errorf("%s while Redis is down took %v", name, d)
		}
	}
	// Unsubscribe only forgets the channel locally.
	if err := a.Unsubscribe(ctx, "a"); err != nil {
		t.Errorf("Unsubscribe while Redis is down: %v", err)
	}
	srv.Restart()
	brokertest.WaitFor(t, "the node to be ready again", a.Ready)
	publishEventually(t, a, "a", "1")
}

// TestTimeoutWhenRedisHangs pauses Redis: calls give up after
// Config.Timeout with broker.ErrUnavailable instead of hanging.
func TestTimeoutWhenRedisHangs(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	a := startBroker(t, srv, Config{Timeout: 200 * time.Millisecond}, brokertest.Discard{})
	if _, err := srv.Do(t.Context(), "CLIENT", "PAUSE", "1000", "ALL"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err := a.Publish(t.Context(), "a", []byte(`1`), broker.PublishOptions{})
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish while Redis hangs: %v, want broker.ErrUnavailable", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Publish while Redis hangs took %v, want about the 200ms timeout", d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.Publish(ctx, "a", []byte(`1`), broker.PublishOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a canceled context: %v", err)
	}
}

// TestDroppedMessagesAreRecovered makes a handler stall so that the
// worker's queue overflows: the dropped publications are counted, then
// delivered from history, in order and without duplicates.
func TestDroppedMessagesAreRecovered(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	rec := brokertest.NewRecorder()
	rec.Gate = make(chan struct{})
	a := startBroker(t, srv, Config{Workers: 1, WorkerQueue: 2}, rec)
	mustSubscribe(t, a, "a")
	const n = 50
	var epoch string
	for i := 1; i <= n; i++ {
		epoch = mustPublish(t, a, "a", fmt.Sprint(i)).Epoch
	}
	brokertest.WaitFor(t, "messages to be dropped", func() bool { return a.Dropped() > 0 })
	close(rec.Gate)
	events := rec.Wait(t, "a", n)
	checkOffsets(t, "after drops", events, epoch)
	for i, e := range events {
		if want := fmt.Sprint(i + 1); string(e.Pub.Data) != want {
			t.Errorf("offset %d: data %q, want %q", i+1, e.Pub.Data, want)
		}
	}
	t.Logf("%d of %d messages dropped and recovered from history", a.Dropped(), n)
	mustPublish(t, a, "a", "last")
	if events := rec.Wait(t, "a", n+1); len(events) != n+1 {
		t.Errorf("got %d publications, want %d", len(events), n+1)
	}
}
