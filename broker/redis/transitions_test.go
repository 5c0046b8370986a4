package redis

import (
	"fmt"
	"testing"
	"time"

	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
)

// TestTransitionLog: entries appended by two brokers come back in the
// order Redis took them, from any point; one node holds the lease at a
// time, records its progress for the next, and another takes over when it
// resigns or its lease lapses.
func TestTransitionLog(t *testing.T) {
	testTransitionLog(t, testredis.Start(t, testredis.Options{}).URL())
}

// TestClusterTransitionLog: the log's keys share a slot, so the scripts
// run on a Cluster.
func TestClusterTransitionLog(t *testing.T) {
	testTransitionLog(t, testredis.StartCluster(t, testredis.ClusterOptions{}).URL())
}

func testTransitionLog(t *testing.T, url string) {
	cfg := Config{URL: url, Prefix: newPrefix()}
	a, b := newBrokerAt(t, cfg), newBrokerAt(t, cfg)
	ctx := t.Context()
	if err := a.AppendTransitions(ctx, [][]byte{[]byte("a1"), []byte("a2")}); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendTransitions(ctx, [][]byte{[]byte("b1")}); err != nil {
		t.Fatal(err)
	}
	read := func(after string, count int) (ids []string, data string) {
		t.Helper()
		es, err := b.ReadTransitions(ctx, after, count, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			ids = append(ids, e.ID)
			data += string(e.Data) + " "
		}
		return ids, data
	}
	ids, data := read("0", 10)
	if data != "a1 a2 b1 " {
		t.Fatalf("log %q, want a1 a2 b1", data)
	}
	if _, data := read(ids[0], 1); data != "a2 " {
		t.Fatalf("after the first, one: %q, want a2", data)
	}
	if ids, data := read(ids[2], 10); len(ids) != 0 {
		t.Fatalf("after the last: %q, want nothing", data)
	}
	// A blocked read returns as soon as an entry is appended.
	got := make(chan string, 1)
	go func() {
		es, err := b.ReadTransitions(ctx, ids[2], 10, time.Minute)
		if err != nil || len(es) != 1 {
			got <- fmt.Sprint(es, err)
			return
		}
		got <- string(es[0].Data)
	}()
	if err := a.AppendTransitions(ctx, [][]byte{[]byte("a3")}); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "a3" {
		t.Fatalf("blocked read: %s, want a3", g)
	}
	ids, _ = read("0", 10)

	lead := func(br *Broker, node string, lease time.Duration, done string) (string, bool) {
		t.Helper()
		p, ok, err := br.LeadTransitions(ctx, node, lease, done)
		if err != nil {
			t.Fatal(err)
		}
		return p, ok
	}
	if p, ok := lead(a, "A", time.Minute, ""); !ok || p != "" {
		t.Fatalf("first lead: %q %v, want the lease and no progress", p, ok)
	}
	if _, ok := lead(b, "B", time.Minute, ids[2]); ok {
		t.Fatal("B took a held lease")
	}
	if p, ok := lead(a, "A", time.Minute, ids[1]); !ok || p != ids[1] {
		t.Fatalf("renewal: %q %v, want the lease and progress %s", p, ok, ids[1])
	}
	if err := b.ResignTransitions(ctx, "B"); err != nil { // not B's: no effect
		t.Fatal(err)
	}
	if _, ok := lead(b, "B", time.Minute, ""); ok {
		t.Fatal("B took the lease after resigning one it did not hold")
	}
	if err := a.ResignTransitions(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if p, ok := lead(b, "B", 100*time.Millisecond, ""); !ok || p != ids[1] {
		t.Fatalf("after A resigned: %q %v, want the lease and A's progress %s", p, ok, ids[1])
	}
	brokertest.WaitFor(t, "B's lease to lapse", func() bool {
		_, ok := lead(a, "A", time.Minute, "")
		return ok
	})
	if _, ok := lead(b, "B", time.Minute, ""); ok {
		t.Fatal("B renewed a lease A took over")
	}
}

// TestTransitionLogTrimmed: the log keeps about TransitionLogSize entries.
func TestTransitionLogTrimmed(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	const size = 1000
	b := newBroker(t, srv, Config{TransitionLogSize: size})
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = []byte(fmt.Sprint(i))
	}
	for range 3 * size / len(batch) {
		if err := b.AppendTransitions(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	log, _, _ := b.transitionKeys()
	n, err := srv.Do(t.Context(), "XLEN", log)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	fmt.Sscan(n, &got)
	// MAXLEN ~ trims whole macro nodes (100 entries by default).
	if got < size || got > size+200 {
		t.Fatalf("log of %d entries, want about %d", got, size)
	}
}
