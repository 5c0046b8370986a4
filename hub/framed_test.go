package hub

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// countingFramer frames a message by prefixing it, and counts its calls.
type countingFramer struct {
	prefix    string
	threshold int
	calls     atomic.Int32
}

func (f *countingFramer) Frame(dst, msg []byte) []byte {
	f.calls.Add(1)
	return append(append(dst, f.prefix...), msg...)
}

func (f *countingFramer) Threshold() int { return f.threshold }

type framedRecorder struct {
	fr  Framer
	got [][]byte
}

func (r *framedRecorder) Deliver(ev *Event, _ *outbox.Batch) bool {
	r.got = append(r.got, ev.Framed(FormatProtocol, r.fr))
	return true
}

// TestFramedOncePerFramer: a broadcast frames its message once per framer
// however many subscribers share it, and not at all under the threshold.
func TestFramedOncePerFramer(t *testing.T) {
	h := New()
	a := &countingFramer{prefix: "A:"}
	b := &countingFramer{prefix: "B:"}
	high := &countingFramer{prefix: "H:", threshold: 1 << 20}
	var subs []*framedRecorder
	for i := 0; i < 100; i++ {
		fr := Framer(a)
		switch i % 10 {
		case 0:
			fr = b
		case 1:
			fr = high
		}
		s := &framedRecorder{fr: fr}
		subs = append(subs, s)
		h.Add("c", s, false)
	}
	pub := &protocol.Publication{Offset: 1, Data: []byte(`"` + strings.Repeat("x", 100) + `"`)}
	h.Broadcast(&Event{Channel: "c", Kind: KindPublication, Pub: pub, Pos: protocol.StreamPosition{Offset: 1}}, nil)
	if n := a.calls.Load(); n != 1 {
		t.Errorf("framer a called %d times for 80 subscribers, want 1", n)
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("framer b called %d times for 10 subscribers, want 1", n)
	}
	if n := high.calls.Load(); n != 0 {
		t.Errorf("a message under the threshold was framed %d times", n)
	}
	for i, s := range subs {
		got := s.got[0]
		want := map[int]string{0: "B:", 1: ""}[i%10]
		if i%10 > 1 {
			want = "A:"
		}
		if !bytes.HasPrefix(got, []byte(want+`{"push":"publication"`)) {
			t.Fatalf("subscriber %d got %q", i, got)
		}
	}
}
