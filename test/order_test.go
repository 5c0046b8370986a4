package test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// seqData is the data of the publications of the order tests.
type seqData struct {
	P   int `json:"p"`   // publisher
	Seq int `json:"seq"` // its publication number, from 0
}

// TestOrderManyPublishers has 8 clients publish 200 messages each
// concurrently to one channel: every subscriber receives all 1600, with
// consecutive offsets, in the same order, each publisher's in the order it
// published them and at the offset its publish was acknowledged with.
func TestOrderManyPublishers(t *testing.T) {
	const (
		publishers   = 8
		perPublisher = 200
		subscribers  = 3
		total        = publishers * perPublisher
		ch           = "order"
	)
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)

	subs := make([]*conn, subscribers)
	for i := range subs {
		subs[i] = dial(t, base, fmt.Sprintf("sub%d", i))
		res, err := subs[i].Subscribe(ctx, ch, client.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Offset != 0 {
			t.Fatalf("subscribe to a new channel: offset %d", res.Offset)
		}
	}
	pubs := make([]*conn, publishers)
	for i := range pubs {
		pubs[i] = dial(t, base, fmt.Sprintf("pub%d", i))
	}

	// acked[p][seq] is the offset publisher p's publication seq got.
	acked := make([][]uint64, publishers)
	var wg sync.WaitGroup
	for p, c := range pubs {
		acked[p] = make([]uint64, perPublisher)
		wg.Go(func() {
			for seq := range perPublisher {
				pos, err := c.Publish(ctx, ch, seqData{P: p, Seq: seq})
				if err != nil {
					t.Errorf("publisher %d, publication %d: %v", p, seq, err)
					return
				}
				acked[p][seq] = pos.Offset
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var first []protocol.Publication
	for i, sub := range subs {
		got := sub.waitPubs(t, ch, total)
		checkOffsets(t, fmt.Sprintf("subscriber %d", i), got, 1)
		if len(got) != total {
			t.Fatalf("subscriber %d received %d publications, want %d", i, len(got), total)
		}
		next := make([]int, publishers) // next seq expected from each publisher
		for _, pub := range got {
			var d seqData
			if err := json.Unmarshal(pub.Data, &d); err != nil || d.P < 0 || d.P >= publishers {
				t.Fatalf("subscriber %d: publication %d has data %s", i, pub.Offset, pub.Data)
			}
			if d.Seq != next[d.P] {
				t.Fatalf("subscriber %d: publisher %d's publication %d at offset %d, want its publication %d next", i, d.P, d.Seq, pub.Offset, next[d.P])
			}
			next[d.P]++
			if acked[d.P][d.Seq] != pub.Offset {
				t.Fatalf("publisher %d's publication %d was acknowledged with offset %d but delivered at %d", d.P, d.Seq, acked[d.P][d.Seq], pub.Offset)
			}
			if pub.From == nil || pub.From.Client != pubs[d.P].ID() {
				t.Fatalf("publication %d from %+v, want publisher %d (%s)", pub.Offset, pub.From, d.P, pubs[d.P].ID())
			}
		}
		if i == 0 {
			first = got
			continue
		}
		for j := range got {
			if !jsonEqual(got[j].Data, first[j].Data) || got[j].Time != first[j].Time {
				t.Fatalf("subscribers 0 and %d differ at offset %d: %s and %s", i, got[j].Offset, first[j].Data, got[j].Data)
			}
		}
	}
}

// TestPipelinedPublishes issues many publishes from one client at once, so
// that they share frames: each is acknowledged with its own offset, and the
// replies reach the right calls.
func TestPipelinedPublishes(t *testing.T) {
	const n = 300
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"": {HistorySize: 1000}})})
	ctx := testContext(t)
	c := dial(t, base, "")
	offsetOf := make([]uint64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			pos, err := c.Publish(ctx, "pipe", seqData{Seq: i})
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
			}
			offsetOf[i] = pos.Offset
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	sorted := slices.Clone(offsetOf)
	slices.Sort(sorted)
	for i, off := range sorted {
		if off != uint64(i+1) {
			t.Fatalf("acknowledged offsets %v, want 1 to %d once each", sorted, n)
		}
	}
	h, err := c.History(ctx, "pipe", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Publications) != n {
		t.Fatalf("history has %d publications, want %d", len(h.Publications), n)
	}
	for _, p := range h.Publications {
		var d seqData
		if err := json.Unmarshal(p.Data, &d); err != nil {
			t.Fatal(err)
		}
		if offsetOf[d.Seq] != p.Offset {
			t.Errorf("publication %d is at offset %d, but its publish was acknowledged with %d", d.Seq, p.Offset, offsetOf[d.Seq])
		}
	}
}

// TestSubscribeWhilePublishing subscribes clients, with and without
// history, while a channel is busy: for each, the publications of the reply
// and the pushes that follow form one stream without gap or duplicate, the
// first push at the reply's offset + 1.
func TestSubscribeWhilePublishing(t *testing.T) {
	const (
		ch          = "busy"
		total       = 600
		subscribers = 12
	)
	base, _ := startServer(t, redcast.Config{})
	ctx := busyContext(t)
	pub := dial(t, base, "pub")

	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range total {
			if _, err := pub.Publish(ctx, ch, seqData{Seq: i}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			published.Add(1)
		}
	})
	type joined struct {
		c       *conn
		history int
		res     *protocol.SubscribeResult
	}
	var subs []joined
	for i := range subscribers {
		// Spread the subscribes over the publishing.
		waitFor(t, "publishing under way", func() bool { return published.Load() >= int64(i*total/(subscribers+2)) })
		c := dial(t, base, fmt.Sprintf("sub%d", i))
		history := []int{0, 5, 100}[i%3]
		res, err := c.Subscribe(ctx, ch, client.SubscribeOptions{History: history})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, joined{c, history, res})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, s := range subs {
		n := len(s.res.Publications)
		if want := min(uint64(s.history), s.res.Offset); uint64(n) != want {
			t.Errorf("subscriber %d: history %d at offset %d returned %d publications, want %d", i, s.history, s.res.Offset, n, want)
		}
		if n > 0 {
			checkOffsets(t, fmt.Sprintf("subscriber %d: history", i), s.res.Publications, s.res.Offset-uint64(n)+1)
		}
		live := s.c.waitPubs(t, ch, int(total-s.res.Offset))
		checkOffsets(t, fmt.Sprintf("subscriber %d: live after offset %d", i, s.res.Offset), live, s.res.Offset+1)
	}
}
