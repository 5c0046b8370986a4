package redis

import (
	"slices"
	"testing"
	"time"

	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
)

// A marked channel is due once its entries' lifetime passed, not before;
// marking it again puts it off; DoneSweep forgets it unless it was marked
// again after it was due.
func TestSweepRegistry(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	const ttl = 600 * time.Millisecond // lifetime 500ms
	b := newBroker(t, srv, Config{Prefix: newPrefix(), PresenceTTL: ttl})
	ctx := t.Context()
	due := func() []string {
		chs, err := b.DueSweeps(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(chs)
		return chs
	}
	for _, ch := range []string{"a", "b"} {
		if err := b.MarkSweep(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if d := due(); len(d) != 0 {
		t.Fatalf("due at once: %v", d)
	}
	brokertest.WaitFor(t, "a and b due", func() bool { return slices.Equal(due(), []string{"a", "b"}) })
	// b is marked again (a node still refreshes it): not due, and
	// DoneSweep of the stale due list does not forget it.
	if err := b.MarkSweep(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"a", "b"} {
		if err := b.DoneSweep(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if d := due(); len(d) != 0 {
		t.Fatalf("due after DoneSweep and b marked again: %v", d)
	}
	brokertest.WaitFor(t, "b due again", func() bool { return slices.Equal(due(), []string{"b"}) })
	if err := b.DoneSweep(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if n, err := srv.Do(ctx, "DBSIZE"); err != nil || n != "0" {
		t.Errorf("DBSIZE %q, %v after every channel was swept; want 0", n, err)
	}
}
