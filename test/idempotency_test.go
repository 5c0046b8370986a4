package test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// publishKey publishes data to ch with an idempotency key and returns its
// position.
func publishKey(t *testing.T, c *conn, ch string, data any, key string) protocol.StreamPosition {
	t.Helper()
	pos, err := c.PublishWith(testContext(t), ch, data, client.PublishOptions{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("publish with key %q: %v", key, err)
	}
	return pos
}

// TestIdempotentPublishAcrossNodes: on Redis, a publish repeated with its
// idempotency key on the other node, by a client or the API, returns the
// first publication's offset and publishes nothing, so that subscribers
// on both nodes get it once; publishers racing with one key on both nodes
// make one publication; and the key holds for a node started after every
// node stopped.
func TestIdempotentPublishAcrossNodes(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
	cfg := server.Config{APIKey: testAPIKey}
	a := startNodeAt(t, rs.URL(), prefix, cfg)
	b := startNodeAt(t, rs.URL(), prefix, cfg)
	ctx := testContext(t)
	const ch = "chat:idem"
	subA, subB := dial(t, a.base, "sa"), dial(t, b.base, "sb")
	for _, s := range []*conn{subA, subB} {
		if _, err := s.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pubA, pubB := dial(t, a.base, "pa"), dial(t, b.base, "pb")

	first := publishKey(t, pubA, ch, "first", "k-1")
	if again := publishKey(t, pubB, ch, "again", "k-1"); again != first {
		t.Fatalf("the key repeated on node B: %+v, want the first publication's %+v", again, first)
	}
	var viaAPI protocol.StreamPosition
	apiOK(t, b.http, "publish", map[string]any{"channel": ch, "data": "api", "idempotency_key": "k-1"}, &viaAPI)
	if viaAPI != first {
		t.Fatalf("the key repeated through node B's API: %+v, want %+v", viaAPI, first)
	}

	// Racing publishers on both nodes, one key: one publication.
	const racers = 8
	got := make([]protocol.StreamPosition, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		p := pubA
		if i%2 == 1 {
			p = pubB
		}
		wg.Go(func() {
			got[i], errs[i] = p.PublishWith(ctx, ch, i, client.PublishOptions{IdempotencyKey: "k-race"})
		})
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("racer %d: %+v, %v; racer 0 got %+v: want one position", i, got[i], errs[i], got[0])
		}
	}
	if got[0].Offset != first.Offset+1 {
		t.Fatalf("the racers' publication at %+v, want offset %d", got[0], first.Offset+1)
	}
	marker, err := pubB.Publish(ctx, ch, "marker")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*conn{"node A": subA, "node B": subB} {
		pubs := s.waitPubs(t, ch, 3)
		if len(pubs) != 3 || pubs[2].Offset != marker.Offset {
			t.Fatalf("subscriber on %s got %v (offsets %v), want 3 ending with the marker at %d", name, dataOf(pubs), offsets(pubs), marker.Offset)
		}
		checkOffsets(t, "subscriber on "+name, pubs, first.Offset)
		if string(pubs[0].Data) != `"first"` {
			t.Fatalf("subscriber on %s: first publication %s, want the first publish's data", name, pubs[0].Data)
		}
	}

	// Every node stops; a node started afterwards still knows the key.
	subA.Close()
	subB.Close()
	pubA.Close()
	pubB.Close()
	a.stop(t)
	b.stop(t)
	c := startNodeAt(t, rs.URL(), prefix, cfg)
	if again := publishKey(t, dial(t, c.base, "pc"), ch, "after restart", "k-1"); again != first {
		t.Fatalf("the key after a restart: %+v, want %+v", again, first)
	}
	var h protocol.HistoryResult
	apiOK(t, c.http, "history", map[string]any{"channel": ch}, &h)
	if len(h.Publications) != 3 || h.Offset != marker.Offset {
		t.Fatalf("history after the restart: %d publications up to %d, want 3 up to %d", len(h.Publications), h.Offset, marker.Offset)
	}
}

// TestIdempotencyWindow: once the window is over, the key publishes again
// (memory broker, one node).
func TestIdempotencyWindow(t *testing.T) {
	base, _ := startServer(t, redcast.Config{IdempotencyWindow: 200 * time.Millisecond})
	p := dial(t, base, "p")
	first := publishKey(t, p, "chat:w", 1, "k")
	if again := publishKey(t, p, "chat:w", 2, "k"); again != first {
		t.Fatalf("within the window: %+v, want %+v", again, first)
	}
	waitFor(t, "the key to publish again after its window", func() bool {
		pos := publishKey(t, p, "chat:w", 3, "k")
		if pos != first && pos.Offset != first.Offset+1 {
			t.Fatalf("after the window: %+v, want offset %d", pos, first.Offset+1)
		}
		return pos != first
	})
}

// TestIdempotencyKeyValidation: keys too long or not printable ASCII are
// refused with 101, by clients and the API.
func TestIdempotencyKeyValidation(t *testing.T) {
	wsBase, httpBase := startAPIServer(t, redcast.Config{})
	p := dial(t, wsBase, "p")
	ok := strings.Repeat("k", protocol.MaxIdempotencyKeyLength)
	publishKey(t, p, "chat:v", 1, ok)
	for _, key := range []string{ok + "k", "a b", "tab\t", "caf\u00e9"} {
		_, err := p.PublishWith(testContext(t), "chat:v", 1, client.PublishOptions{IdempotencyKey: key})
		wantError(t, fmt.Sprintf("client key %q", key), err, protocol.ErrBadRequest)
		r := callAPI(t, httpBase, "publish", "apikey "+testAPIKey, map[string]any{"channel": "chat:v", "data": 1, "idempotency_key": key})
		if r.Status != http.StatusBadRequest || r.Error == nil || r.Error.Code != protocol.ErrBadRequest.Code {
			t.Errorf("API key %q: status %d, body %s; want 400 with 101", key, r.Status, r.Raw)
		}
	}
}
