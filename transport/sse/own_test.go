package sse

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/protocol"
)

// ownEvents writes the queued message msg with a fresh eventWriter of
// channels, and returns the data of each event and the writer's positions.
func ownEvents(t *testing.T, msg []byte, channels ...string) ([]string, *positions) {
	t.Helper()
	ew := eventWriter{pos: newPositions(channels, nil), retry: time.Second}
	ew.own(msg)
	var data []string
	for _, ev := range strings.Split(strings.TrimSuffix(string(ew.buf), "\n\n"), "\n\n") {
		for _, l := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(l, "data: "); ok {
				data = append(data, d)
			}
		}
	}
	return data, ew.pos
}

// A subscribe result rides the queue as one message, and is written as
// its subscribe event then its publications, the channel's position set
// to the one before them and advanced by each.
func TestOwnSubscribe(t *testing.T) {
	since := &protocol.StreamPosition{Offset: 4, Epoch: "E"}
	res := &protocol.SubscribeResult{Offset: 6, Epoch: "E", Recoverable: true, Recovered: true,
		Publications: []protocol.Publication{{Offset: 5, Data: json.RawMessage(`"five"`)}, {Offset: 6, Data: json.RawMessage(`{"n":6}`)}}}
	data, pos := ownEvents(t, subscribeMessage("chat:a", since, res), "chat:a")
	if len(data) != 3 {
		t.Fatalf("%d events %q, want 3", len(data), data)
	}
	var sub SubscribePush
	if err := json.Unmarshal([]byte(data[0]), &sub); err != nil || sub.Push != PushSubscribe || sub.Channel != "chat:a" ||
		sub.Offset != 6 || !sub.Recovered || sub.Since == nil || *sub.Since != *since {
		t.Errorf("subscribe event %s (%v)", data[0], err)
	}
	for i, want := range []string{`"five"`, `{"n":6}`} {
		var m protocol.ServerMessage
		if err := json.Unmarshal([]byte(data[i+1]), &m); err != nil || m.Push.Pub == nil || string(m.Push.Pub.Data) != want {
			t.Errorf("event %d: %s (%v), want the publication %s", i+1, data[i+1], err, want)
		}
	}
	if got := pos.entries[pos.index["chat:a"]].pos; got != (protocol.StreamPosition{Offset: 6, Epoch: "E"}) {
		t.Errorf("position after the result %+v, want 6 in E", got)
	}

	res = &protocol.SubscribeResult{Offset: 9, Epoch: "E"}
	data, pos = ownEvents(t, subscribeMessage("chat:b", nil, res), "chat:b")
	if _, known := pos.index["chat:b"]; len(data) != 1 || known {
		t.Errorf("a channel without recovery: events %q, in ids: %v; want the subscribe event only, not in ids", data, known)
	}
}

// The connect event advises the retry delay before its data.
func TestOwnConnect(t *testing.T) {
	ew := eventWriter{pos: newPositions(nil, nil), retry: 1500 * time.Millisecond}
	ew.own(connectMessage(&protocol.ConnectResult{Client: "c1"}))
	if got := string(ew.buf); !strings.HasPrefix(got, "retry: 1500\nid: ") || !strings.Contains(got, `data: {"push":"connect","client":"c1"`) {
		t.Errorf("connect event %q", got)
	}
}

// FuzzOwnEvent feeds arbitrary queued messages to the writer of own
// events: it must never panic (only the stream queues them, but a message
// it cannot read must cost no more than its own events).
func FuzzOwnEvent(f *testing.F) {
	pubs := []protocol.Publication{{Offset: 3, Data: json.RawMessage(`1`)}}
	f.Add(connectMessage(&protocol.ConnectResult{Client: "c"}))
	f.Add(subscribeMessage("chat:a", nil, &protocol.SubscribeResult{Offset: 3, Epoch: "E", Recoverable: true, Publications: pubs}))
	f.Add(subscribeMessage("b", nil, &protocol.SubscribeResult{}))
	f.Add([]byte{ownTag, ownSubscribe, 1, 0xff})
	f.Add([]byte{ownTag})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		ew := eventWriter{pos: newPositions([]string{"chat:a"}, nil), retry: time.Second}
		ew.own(msg)
		if len(ew.buf) > 0 && !strings.HasPrefix(string(ew.buf), "id: ") && !strings.HasPrefix(string(ew.buf), "retry: ") {
			t.Fatalf("wrote %q", ew.buf)
		}
	})
}
