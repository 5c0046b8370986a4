package test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// lastPosition is the position a client keeps for recovery: the subscribe
// result's, then that of each publication it handled.
func lastPosition(res *protocol.SubscribeResult, pubs []protocol.Publication) protocol.StreamPosition {
	pos := protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
	if len(pubs) > 0 {
		pos.Offset = pubs[len(pubs)-1].Offset
	}
	return pos
}

// TestRecoveryAfterReconnect drops a subscriber's connection while others
// publish; it reconnects with since and recovers exactly what it missed,
// then live publications continue at the next offset.
func TestRecoveryAfterReconnect(t *testing.T) {
	const ch = "rec"
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	pub := dial(t, base, "pub")
	sub := dial(t, base, "sub")

	res, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, ch, 10)
	last := lastPosition(res, sub.waitPubs(t, ch, 10))
	if last.Offset != 10 || last.Epoch == "" {
		t.Fatalf("position after 10 publications: %+v", last)
	}
	sub.Close()

	missed := publishN(t, pub, ch, 20) // offsets 11 to 30
	if missed[0].Epoch != last.Epoch {
		t.Fatalf("epoch changed from %s to %s", last.Epoch, missed[0].Epoch)
	}

	sub2 := dial(t, base, "sub")
	// History asks for the latest 5 should recovery fail; it succeeds, so
	// all 20 come back.
	res2, err := sub2.Subscribe(ctx, ch, client.SubscribeOptions{Since: &last, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Recovered || !res2.Recoverable || res2.Offset != 30 || res2.Epoch != last.Epoch {
		t.Errorf("recovering subscribe: recovered %v, recoverable %v, position %d/%s; want recovered at 30/%s",
			res2.Recovered, res2.Recoverable, res2.Offset, res2.Epoch, last.Epoch)
	}
	checkOffsets(t, "recovered publications", res2.Publications, 11)
	if len(res2.Publications) != 20 {
		t.Fatalf("recovered %d publications, want the 20 missed", len(res2.Publications))
	}
	for i, p := range res2.Publications {
		if want := fmt.Sprintf(`{"n":%d}`, i+1); !jsonEqual(p.Data, []byte(want)) || p.From == nil || p.From.Client != pub.ID() {
			t.Errorf("recovered publication %d: data %s from %+v, want %s from %s", p.Offset, p.Data, p.From, want, pub.ID())
		}
	}

	publishN(t, pub, ch, 1)
	live := sub2.waitPubs(t, ch, 1)
	checkOffsets(t, "live after recovery", live, 31)

	// Recovering from the current position recovers nothing, successfully.
	sub3 := dial(t, base, "sub")
	now := protocol.StreamPosition{Offset: 31, Epoch: last.Epoch}
	res3, err := sub3.Subscribe(ctx, ch, client.SubscribeOptions{Since: &now, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !res3.Recovered || len(res3.Publications) != 0 || res3.Offset != 31 {
		t.Errorf("recovering from the current position: %+v, want recovered with nothing", res3)
	}
}

// TestRecoveryWhilePublishing reconnects a subscriber while a publisher keeps
// publishing: recovered and live publications together are every
// publication after the kept position, once each, in order.
func TestRecoveryWhilePublishing(t *testing.T) {
	const (
		ch     = "busy"
		rounds = 5
		during = 200 // publications during each resubscribe
	)
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"": {HistorySize: 5000}})})
	ctx := busyContext(t)
	pub := dial(t, base, "pub")

	sub := dial(t, base, "sub")
	res, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, ch, 10)
	last := lastPosition(res, sub.waitPubs(t, ch, 10))

	for round := range rounds {
		sub.Close()
		publishN(t, pub, ch, 20) // missed while disconnected

		var published atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range during {
				if _, err := pub.Publish(ctx, ch, map[string]int{"round": round, "i": i}); err != nil {
					t.Errorf("publish during resubscribe: %v", err)
					return
				}
				published.Add(1)
			}
		})
		waitFor(t, "publishing under way", func() bool { return published.Load() >= 20 })
		sub = dial(t, base, "sub")
		res, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{Since: &last})
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		end := last.Offset + 20 + during
		if !res.Recovered || res.Epoch != last.Epoch {
			t.Fatalf("round %d: recovered %v in epoch %s, want recovered in %s", round, res.Recovered, res.Epoch, last.Epoch)
		}
		checkOffsets(t, fmt.Sprintf("round %d: recovered", round), res.Publications, last.Offset+1)
		if got := lastPosition(res, res.Publications); res.Offset != got.Offset {
			t.Fatalf("round %d: result offset %d, but the last recovered publication is %d", round, res.Offset, got.Offset)
		}
		live := sub.waitPubs(t, ch, int(end-res.Offset))
		checkOffsets(t, fmt.Sprintf("round %d: live after recovery", round), live, res.Offset+1)
		if n := uint64(len(res.Publications) + len(live)); n != end-last.Offset {
			t.Fatalf("round %d: %d recovered and %d live publications, want %d in all", round, len(res.Publications), len(live), end-last.Offset)
		}
		last = protocol.StreamPosition{Offset: end, Epoch: last.Epoch}
	}
}

// TestRecoveryNotPossible checks the replies when history cannot cover the
// gap: trimmed publications or another epoch give recovered false and the
// latest publications asked for with history.
func TestRecoveryNotPossible(t *testing.T) {
	const ch = "small:x"
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"small": {HistorySize: 5}})})
	ctx := testContext(t)
	pub := dial(t, base, "pub")
	sub := dial(t, base, "sub")

	res, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, ch, 3)
	kept := lastPosition(res, sub.waitPubs(t, ch, 3))
	sub.Close()
	publishN(t, pub, ch, 10) // offsets 4 to 13; history keeps 9 to 13
	epoch := kept.Epoch

	cases := []struct {
		name      string
		since     protocol.StreamPosition
		history   int
		recovered bool
		first     uint64 // offset of the first publication returned
		n         int    // publications returned
	}{
		{name: "trimmed, history 3", since: kept, history: 3, recovered: false, first: 11, n: 3},
		{name: "trimmed, history 50", since: kept, history: 50, recovered: false, first: 9, n: 5},
		{name: "trimmed, no history", since: kept, history: 0, recovered: false, n: 0},
		{name: "other epoch, history 2", since: protocol.StreamPosition{Offset: 13, Epoch: epoch + "x"}, history: 2, recovered: false, first: 12, n: 2},
		{name: "just before the oldest kept", since: protocol.StreamPosition{Offset: 8, Epoch: epoch}, history: 1, recovered: true, first: 9, n: 5},
		{name: "current position", since: protocol.StreamPosition{Offset: 13, Epoch: epoch}, history: 1, recovered: true, n: 0},
	}
	for _, tc := range cases {
		c := dial(t, base, "sub")
		res, err := c.Subscribe(ctx, ch, client.SubscribeOptions{Since: &tc.since, History: tc.history})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Recovered != tc.recovered || !res.Recoverable || res.Offset != 13 || res.Epoch != epoch {
			t.Errorf("%s: recovered %v, recoverable %v, position %d/%s; want recovered %v, recoverable, at 13/%s",
				tc.name, res.Recovered, res.Recoverable, res.Offset, res.Epoch, tc.recovered, epoch)
		}
		if len(res.Publications) != tc.n {
			t.Errorf("%s: %d publications %v, want %d", tc.name, len(res.Publications), offsets(res.Publications), tc.n)
		}
		checkOffsets(t, tc.name, res.Publications, tc.first)
		c.Close()
	}

	// After a failed recovery the subscription is live from the reply's
	// position.
	c := dial(t, base, "sub")
	if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{Since: &kept}); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, ch, 1)
	checkOffsets(t, "live after failed recovery", c.waitPubs(t, ch, 1), 14)
}

// TestRecoveredFalseIsExplicit checks the wire form of a failed recovery:
// docs/protocol.md shows "recovered": false in the reply, which a
// JavaScript client may test with === false.
func TestRecoveredFalseIsExplicit(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	pub := dial(t, base, "pub")
	publishN(t, pub, "news", 2)
	c, _ := dialRawConnected(t, base, "")
	r := c.call(protocol.MethodSubscribe, protocol.SubscribeParams{
		Channel: "news",
		Since:   &protocol.StreamPosition{Offset: 1, Epoch: "not-the-epoch"},
	})
	decodeResult(t, r, nil)
	if !bytes.Contains(r.Result, []byte(`"recovered":false`)) {
		t.Errorf("failed recovery reply %s has no \"recovered\":false", r.Result)
	}
}

// TestRecoveryFromEmptyChannel recovers from the position of a subscription
// made before anything was published: the epoch the reply named must be the
// one the first publications get, so that nothing is lost.
func TestRecoveryFromEmptyChannel(t *testing.T) {
	const ch = "fresh"
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	sub := dial(t, base, "sub")
	res, err := sub.Subscribe(ctx, ch, client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != 0 || res.Epoch == "" {
		t.Fatalf("subscribe to an empty channel: %+v, want offset 0 and an epoch", res)
	}
	kept := lastPosition(res, nil)
	sub.Close()

	pub := dial(t, base, "pub")
	pos := publishN(t, pub, ch, 2)
	if pos[0].Epoch != kept.Epoch {
		t.Errorf("first publication in epoch %s, but subscribing to the empty channel gave epoch %s", pos[0].Epoch, kept.Epoch)
	}
	sub2 := dial(t, base, "sub")
	res2, err := sub2.Subscribe(ctx, ch, client.SubscribeOptions{Since: &kept})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Recovered {
		t.Errorf("recovery from %+v (taken before the first publication): recovered false", kept)
	}
	checkOffsets(t, "recovered", res2.Publications, 1)
	if len(res2.Publications) != 2 {
		t.Errorf("recovered %d publications, want 2", len(res2.Publications))
	}
}

// TestRecoveryDepth: recovery goes back as far as history holds, past the
// 1000 publications one reply carries, with the memory broker and with
// Redis; and a backlog larger than the client's queue arrives whole, a
// page at a time, with neither a gap nor a slow-consumer disconnect.
func TestRecoveryDepth(t *testing.T) {
	ns := namespaces(map[string]auth.Namespace{"deep": {HistorySize: 2500}})
	cfg := redcast.Config{Namespaces: ns, PublishRate: -1}
	onEachBroker(t, cfg, checkRecoveryDepth)
}

func checkRecoveryDepth(t *testing.T, base string) {
	pub := dial(t, base, "pub")

	const ch, n, behind = "deep:x", 2010, 1501
	publishMany(t, pub, ch, n, map[string]int{"n": 1})
	since := protocol.StreamPosition{Offset: n - behind, Epoch: pubSubscribe(t, pub, ch).Epoch}
	got := recoverAll(t, dial(t, base, "sub"), ch, since, n)
	checkOffsets(t, fmt.Sprintf("recovery of %d publications", behind), got, since.Offset+1)
	if len(got) != behind {
		t.Errorf("recovered %d publications, want %d", len(got), behind)
	}

	// 120 publications of 12 KB, 1.4 MB: more than the queue's 1 MiB.
	const big = "deep:big"
	publishMany(t, pub, big, 120, map[string]string{"text": strings.Repeat("x", 12<<10)})
	got = recoverAll(t, dial(t, base, "big"), big, protocol.StreamPosition{Offset: 0, Epoch: pubSubscribe(t, pub, big).Epoch}, 120)
	checkOffsets(t, "recovery of 1.4 MB", got, 1)
	if len(got) != 120 {
		t.Errorf("recovered %d large publications, want 120", len(got))
	}
}

// publishMany publishes data n times to ch, 16 publishes in flight at a
// time (their order does not matter here).
func publishMany(t *testing.T, c *conn, ch string, n int, data any) {
	t.Helper()
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if _, err := c.Publish(ctx, ch, data); err != nil {
					errs <- fmt.Errorf("publish %d to %s: %w", i, ch, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// pubSubscribe subscribes c to ch and returns the result, which gives the
// channel's epoch.
func pubSubscribe(t *testing.T, c *conn, ch string) *protocol.SubscribeResult {
	t.Helper()
	res, err := c.Subscribe(testContext(t), ch, client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// recoverAll subscribes c to ch with since and returns the recovered
// publications, those of the reply and the pushes that follow it, up to
// offset last; it fails unless the subscribe recovered. A live
// publication then continues them.
func recoverAll(t *testing.T, c *conn, ch string, since protocol.StreamPosition, last uint64) []protocol.Publication {
	t.Helper()
	res, err := c.Subscribe(testContext(t), ch, client.SubscribeOptions{Since: &since})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered {
		t.Fatalf("subscribe %d behind: recovered false, although history holds every publication", last-since.Offset)
	}
	got := res.Publications
	if n := int(last - res.Offset); n > 0 {
		got = append(got, c.waitPubs(t, ch, n)[:n]...)
	}
	publishN(t, c, ch, 1)
	live := c.waitPubs(t, ch, int(last-res.Offset)+1)
	if o := live[len(live)-1].Offset; o != last+1 {
		t.Errorf("live publication after the recovery: offset %d, want %d", o, last+1)
	}
	return got
}
