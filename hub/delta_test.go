package hub

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/centrifugal/fdelta"

	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// deltaRecorder wants deltas and keeps the delta push of every event.
type deltaRecorder struct {
	want   bool
	deltas [][]byte
}

func (r *deltaRecorder) Deliver(ev *Event, _ *outbox.Batch) bool {
	r.deltas = append(r.deltas, ev.Delta())
	return true
}

func (r *deltaRecorder) WantsDelta() bool { return r.want }

func pubEvent(ch string, off uint64, epoch, data string) *Event {
	return &Event{Channel: ch, Kind: KindPublication, Pub: &protocol.Publication{Offset: off, Data: json.RawMessage(data)}, Pos: protocol.StreamPosition{Offset: off, Epoch: epoch}}
}

// applied returns the data a delta push makes from prev, failing when the
// push is not a delta.
func applied(t *testing.T, push []byte, prev string) string {
	t.Helper()
	var m protocol.Push
	if err := json.Unmarshal(push, &m); err != nil || m.Pub == nil || !m.Pub.Delta {
		t.Fatalf("not a delta push: %s (%v)", push, err)
	}
	var d string
	if err := json.Unmarshal(m.Pub.Data, &d); err != nil {
		t.Fatalf("delta data %s is not a string", m.Pub.Data)
	}
	out, err := fdelta.Apply([]byte(prev), []byte(d))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return string(out)
}

func TestDelta(t *testing.T) {
	h := New()
	a, b := &deltaRecorder{want: true}, &deltaRecorder{want: true}
	plain := &deltaRecorder{}
	h.Add("c", a, false)
	h.Add("c", b, false)
	h.Add("c", plain, false)
	long := strings.Repeat(`"player",`, 30)
	d1 := `{"score":1,"list":[` + long + `0]}`
	d2 := `{ "score": 2, "list":[` + long + `0]}` // compacted on the wire
	h.Broadcast(pubEvent("c", 1, "e", d1), nil)
	ev := pubEvent("c", 2, "e", d2)
	h.Broadcast(ev, nil)
	if a.deltas[0] != nil {
		t.Fatalf("a delta for the first publication: %s", a.deltas[0])
	}
	if got := applied(t, a.deltas[1], d1); got != `{"score":2,"list":[`+long+`0]}` {
		t.Fatalf("delta makes %s", got)
	}
	if &a.deltas[1][0] != &b.deltas[1][0] || &a.deltas[1][0] != &plain.deltas[1][0] {
		t.Fatal("the delta was encoded more than once for one broadcast")
	}

	// A gap (offset 4 after 2) or another epoch: no delta.
	h.Broadcast(pubEvent("c", 4, "e", d1), nil)
	h.Broadcast(pubEvent("c", 5, "f", d2), nil)
	if a.deltas[2] != nil || a.deltas[3] != nil {
		t.Fatalf("deltas across a gap or an epoch change: %q %q", a.deltas[2], a.deltas[3])
	}
	// The last subscriber that wants deltas leaves: the hub keeps nothing.
	h.Remove("c", a)
	h.Remove("c", b)
	h.Broadcast(pubEvent("c", 6, "f", d1), nil)
	h.Add("c", a, false)
	h.Broadcast(pubEvent("c", 7, "f", d2), nil)
	if got := a.deltas[len(a.deltas)-1]; got != nil {
		t.Fatalf("a delta from a publication broadcast while nobody wanted deltas: %s", got)
	}
	// Data with nothing in common: a delta no shorter than the data is not sent.
	h.Broadcast(pubEvent("c", 8, "f", `{"x":"0123456789"}`), nil)
	if got := a.deltas[len(a.deltas)-1]; got != nil {
		t.Fatalf("a delta longer than its data: %s", got)
	}
}

// TestDeltaNotCutThroughUTF8: a delta that cuts through a multi-byte
// character, which a JSON string cannot carry, is not sent.
func TestDeltaNotCutThroughUTF8(t *testing.T) {
	h := New()
	a := &deltaRecorder{want: true}
	h.Add("c", a, false)
	base := strings.Repeat("x", 200)
	prev, cur := `"`+base+`é"`, `"`+base+`è"` // é and è share their first byte
	if utf8.Valid(fdelta.Create([]byte(prev), []byte(cur))) {
		t.Fatal("the delta of this data no longer cuts through a character: the test checks nothing")
	}
	h.Broadcast(pubEvent("c", 1, "e", prev), nil)
	h.Broadcast(pubEvent("c", 2, "e", cur), nil)
	if d := a.deltas[1]; d != nil {
		t.Fatalf("a delta that is not valid UTF-8 was sent: %q", d)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", `a"b\c`, "line\nnext\ttab\x01", "日本 é", "<&>"} {
		var got string
		if err := json.Unmarshal(protocol.AppendJSONString(nil, []byte(s)), &got); err != nil || got != s {
			t.Errorf("%q: got %q, %v", s, got, err)
		}
	}
}
