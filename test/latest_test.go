package test

import (
	"fmt"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// TestLatestOnSubscribe: in a namespace with latest_on_subscribe, a
// subscriber that asks for no history gets the channel's latest
// publication in the subscribe reply (none for an empty channel), one that
// asks for more gets what it asked for, and a recovery is unchanged; a
// namespace without it sends nothing unasked. Memory broker and Redis.
func TestLatestOnSubscribe(t *testing.T) {
	ns := namespaces(map[string]auth.Namespace{
		"lobby": {HistorySize: 10, LatestOnSubscribe: true},
		"feed":  {HistorySize: 10},
	})
	cfg := redcast.Config{Namespaces: ns}
	onEachBroker(t, cfg, checkLatestOnSubscribe)
}

func checkLatestOnSubscribe(t *testing.T, base string) {
	ctx := testContext(t)
	pub := dial(t, base, "pub")

	empty, err := dial(t, base, "a").Subscribe(ctx, "lobby:empty", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.Publications) != 0 || empty.Offset != 0 {
		t.Fatalf("empty channel: %+v", empty)
	}

	for _, ch := range []string{"lobby:1", "feed:1"} {
		for i := 1; i <= 3; i++ {
			if _, err := pub.Publish(ctx, ch, map[string]int{"players": i}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		ch      string
		history int
		want    []uint64
	}{
		{"lobby:1", 0, []uint64{3}},
		{"lobby:1", 2, []uint64{2, 3}},
		{"feed:1", 0, nil},
		{"feed:1", 1, []uint64{3}},
	} {
		what := fmt.Sprintf("%s with history %d", tc.ch, tc.history)
		res, err := dial(t, base, "s").Subscribe(ctx, tc.ch, client.SubscribeOptions{History: tc.history})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := offsets(res.Publications); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: publications %v, want %v", what, got, tc.want)
		}
		if tc.ch == "lobby:1" && len(res.Publications) > 0 && !jsonEqual(res.Publications[len(res.Publications)-1].Data, []byte(`{"players":3}`)) {
			t.Errorf("%s: latest data %s", what, res.Publications[len(res.Publications)-1].Data)
		}
	}

	// A recovery that misses nothing gets nothing more.
	first, err := dial(t, base, "r").Subscribe(ctx, "lobby:1", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	since := protocol.StreamPosition{Offset: first.Offset, Epoch: first.Epoch}
	res, err := dial(t, base, "r2").Subscribe(ctx, "lobby:1", client.SubscribeOptions{Since: &since})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Recovered || len(res.Publications) != 0 {
		t.Errorf("recovery from the latest position: %+v", res)
	}
}
