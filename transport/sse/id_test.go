package sse

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

func TestIDRoundTrip(t *testing.T) {
	channels := []string{"chat:a", "b", "dm:#alice,bob"}
	since := map[string]protocol.StreamPosition{
		"chat:a": {Offset: 7, Epoch: "KX3B7QPA"},
		"b":      {Offset: 1 << 40, Epoch: "ZZ"},
	}
	p := newPositions(channels, since)
	p.set("dm:#alice,bob", protocol.StreamPosition{Offset: 0, Epoch: "E"})
	p.advance("chat:a", 8)
	p.advance("unknown", 3)
	byKey, err := decodeID(string(p.ID()))
	if err != nil {
		t.Fatal(err)
	}
	got := sinceOf(channels, byKey)
	want := map[string]protocol.StreamPosition{
		"chat:a":        {Offset: 8, Epoch: "KX3B7QPA"},
		"b":             {Offset: 1 << 40, Epoch: "ZZ"},
		"dm:#alice,bob": {Offset: 0, Epoch: "E"},
	}
	if !maps.Equal(got, want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	p.forget("b")
	byKey, _ = decodeID(string(p.ID()))
	if got := sinceOf(channels, byKey); len(got) != 2 || got["dm:#alice,bob"] != want["dm:#alice,bob"] {
		t.Fatalf("after forget: %v", got)
	}
}

// TestIDBounds: an id carries at most MaxIDChannels channels and no epoch
// longer than MaxEpochLength, and the largest one fits MaxIDLength.
func TestIDBounds(t *testing.T) {
	var entries []idEntry
	for i := range MaxIDChannels + 10 {
		entries = append(entries, idEntry{key: uint32(i), pos: protocol.StreamPosition{Offset: ^uint64(0), Epoch: strings.Repeat("e", MaxEpochLength)}})
	}
	entries[0].pos.Epoch += "x" // too long: left out
	id := appendID(nil, entries)
	if len(id) > MaxIDLength {
		t.Fatalf("id of %d bytes, longer than MaxIDLength %d", len(id), MaxIDLength)
	}
	byKey, err := decodeID(string(id))
	if err != nil || len(byKey) != MaxIDChannels {
		t.Fatalf("decoded %d entries (%v), want %d", len(byKey), err, MaxIDChannels)
	}
	if _, ok := byKey[0]; ok {
		t.Errorf("the entry with a long epoch was encoded")
	}
	// An id typical of 128 channels with 8-byte epochs stays under 4 KB.
	for i := range entries {
		entries[i].pos = protocol.StreamPosition{Offset: 1 << 20, Epoch: "KX3B7QPA"}
	}
	if id := appendID(nil, entries[:MaxIDChannels]); len(id) > 4000 {
		t.Errorf("typical id of 128 channels: %d bytes", len(id))
	}
}

// TestSinceOfCollision: two requested channels with the same key get no
// position.
func TestSinceOfCollision(t *testing.T) {
	byKey := map[uint32]protocol.StreamPosition{channelKey("a"): {Offset: 1, Epoch: "E"}}
	if got := sinceOf([]string{"a", "b"}, byKey); got["a"].Offset != 1 {
		t.Fatalf("sinceOf = %v", got)
	}
	// Fake a collision by asking for "a" twice under two names with one key.
	owners := []string{"a", "a"}
	if got := sinceOf(owners, byKey); len(got) != 0 {
		t.Fatalf("colliding channels got %v", got)
	}
}

// FuzzDecodeID feeds arbitrary Last-Event-IDs to the decoder. It must
// never panic, accept nothing longer than MaxIDLength or with more than
// MaxIDChannels entries or a longer epoch, and what it accepts must encode
// back to an id with the same positions.
func FuzzDecodeID(f *testing.F) {
	f.Add(string(appendID(nil, nil)))
	f.Add(string(appendID(nil, []idEntry{{key: 1, pos: protocol.StreamPosition{Offset: 7, Epoch: "KX3B7QPA"}}})))
	f.Add(string(appendID(nil, []idEntry{{key: 1, pos: protocol.StreamPosition{Offset: 1 << 63}}, {key: 2, pos: protocol.StreamPosition{Epoch: "E"}}})))
	f.Add("AQAAAAEB")
	f.Add("AQAAAAH_____________AQ")
	f.Add("garbage!")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		byKey, err := decodeID(id)
		if err != nil {
			return
		}
		if len(id) > MaxIDLength || len(byKey) > MaxIDChannels {
			t.Fatalf("accepted an id of %d bytes with %d entries", len(id), len(byKey))
		}
		var entries []idEntry
		for k, pos := range byKey {
			if len(pos.Epoch) > MaxEpochLength {
				t.Fatalf("accepted an epoch of %d bytes", len(pos.Epoch))
			}
			entries = append(entries, idEntry{key: k, pos: pos})
		}
		again, err := decodeID(string(appendID(nil, entries)))
		if err != nil || !maps.Equal(again, byKey) {
			t.Fatalf("re-encoded id decodes to %v (%v), want %v", again, err, byKey)
		}
	})
}

// TestPublicationHead: the fast path reads the lines the hub encodes, and
// lines in another field order are still read.
func TestPublicationHead(t *testing.T) {
	ev := &hub.Event{Channel: "chat:a", Kind: hub.KindPublication,
		Pub: &protocol.Publication{Offset: 42, Data: json.RawMessage(`{"text":"x"}`), From: &protocol.ClientInfo{Client: "C"}}}
	line := ev.Bytes(hub.FormatProtocol)
	if !strings.HasPrefix(string(line), string(pubPrefix)) {
		t.Fatalf("the hub's publication line %s does not start as the fast path expects", line)
	}
	for _, tc := range []struct {
		line   string
		ch     string
		offset uint64
		ok     bool
	}{
		{string(line), "chat:a", 42, true},
		{`{"channel":"b","pub":{"data":1,"offset":9},"push":"publication"}`, "b", 9, true},
		{`{"push":"join","channel":"b","client":{"client":"C"}}`, "", 0, false},
		{`{"push":"refresh","reason":"token expired"}`, "", 0, false},
		{`not json`, "", 0, false},
	} {
		ch, offset, ok := publicationHead([]byte(tc.line))
		if ch != tc.ch || offset != tc.offset || ok != tc.ok {
			t.Errorf("publicationHead(%s) = %q, %d, %v; want %q, %d, %v", tc.line, ch, offset, ok, tc.ch, tc.offset, tc.ok)
		}
	}
}

func TestAppendData(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}`:     "data: {\"a\":1}\n",
		"{\n\"a\":1}": "data: {\ndata: \"a\":1}\n",
		"a\r\nb\rc":   "data: a\ndata: b\ndata: c\n",
	} {
		if got := string(appendData(nil, []byte(in))); got != want {
			t.Errorf("appendData(%q) = %q, want %q", in, got, want)
		}
	}
}
