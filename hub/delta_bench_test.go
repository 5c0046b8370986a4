package hub

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/redcast/redcast/protocol"
)

// matchDoc is publication n of a feed of about 2 KB documents that differ
// a little from one to the next (as test/testdata/js/delta.mjs's).
func matchDoc(n int) []byte {
	type player struct {
		ID      int    `json:"id"`
		Name    string `json:"name"`
		Team    string `json:"team"`
		Touches int    `json:"touches"`
		Passes  int    `json:"passes"`
		Yellow  bool   `json:"yellow"`
	}
	players := make([]player, 22)
	for i := range players {
		mine := n / 22
		if i < n%22 {
			mine++
		}
		team := "home"
		if i >= 11 {
			team = "away"
		}
		players[i] = player{100 + i, fmt.Sprintf("Player %c. Surname%d", 'A'+i, i), team, mine, mine * 4 / 5, mine > 40}
	}
	b, _ := json.Marshal(map[string]any{"minute": n / 11, "score": map[string]int{"home": n / 300, "away": n / 450},
		"last_event": fmt.Sprintf("event %d: pass by player %d", n, n%22), "players": players})
	return b
}

// BenchmarkEventDelta is what a delta costs the node once per publication:
// compacting the data, the Fossil delta against the previous publication,
// and encoding the push.
func BenchmarkEventDelta(b *testing.B) {
	docs := [][]byte{matchDoc(500), matchDoc(501)}
	b.SetBytes(int64(len(docs[1])))
	var d deltaState
	d.n = 1
	d.track(&Event{Kind: KindPublication, Pub: &protocol.Publication{Offset: 1, Data: docs[0]}, Pos: protocol.StreamPosition{Offset: 1, Epoch: "e"}})
	off := uint64(1)
	for b.Loop() {
		off++
		ev := &Event{Channel: "chat:match", Kind: KindPublication, Pub: &protocol.Publication{Offset: off, Data: docs[off%2]}, Pos: protocol.StreamPosition{Offset: off, Epoch: "e"}}
		d.track(ev)
		if ev.Delta() == nil {
			b.Fatal("no delta")
		}
	}
}
