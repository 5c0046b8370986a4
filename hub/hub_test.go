package hub

import (
	"fmt"
	"github.com/redcast/redcast/outbox"
	"sync"
	"testing"

	"github.com/redcast/redcast/protocol"
)

type recorder struct {
	format Format
	mu     sync.Mutex
	got    [][]byte
}

func (r *recorder) Deliver(ev *Event, _ *outbox.Batch) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := ev.Bytes(r.format)
	r.got = append(r.got, msg)
	return msg != nil
}

func TestAddRemove(t *testing.T) {
	h := New()
	a, b := &recorder{}, &recorder{}
	if first, added := h.Add("c", a, false); !first || !added {
		t.Fatalf("first Add = %v, %v", first, added)
	}
	if first, added := h.Add("c", b, true); first || !added {
		t.Fatalf("second Add = %v, %v", first, added)
	}
	if _, added := h.Add("c", b, true); added {
		t.Fatal("Add of a subscriber twice succeeded")
	}
	if n := h.NumSubscribers("c"); n != 2 {
		t.Fatalf("NumSubscribers = %d", n)
	}
	if last, removed := h.Remove("c", a); last || !removed {
		t.Fatalf("Remove(a) = %v, %v", last, removed)
	}
	if _, removed := h.Remove("c", a); removed {
		t.Fatal("Remove of a removed subscriber succeeded")
	}
	if last, removed := h.Remove("c", b); !last || !removed {
		t.Fatalf("Remove(b) = %v, %v", last, removed)
	}
	if chs := h.Channels(); len(chs) != 0 {
		t.Fatalf("Channels after removing all = %v", chs)
	}
	// b asked for joins; removed, it gets none.
	h.Add("c", a, false)
	h.Broadcast(&Event{Channel: "c", Kind: KindJoin, Client: &protocol.ClientInfo{Client: "x"}}, nil)
	if len(b.got) != 0 {
		t.Errorf("a removed subscriber got %q", b.got)
	}
}

// BenchmarkBroadcastJoin measures a join in a channel of 10,000
// subscribers: when none asked for joins it reaches nobody, whatever the
// channel's size.
func BenchmarkBroadcastJoin(b *testing.B) {
	for _, asked := range []bool{false, true} {
		b.Run(fmt.Sprintf("asked=%v", asked), func(b *testing.B) {
			h := New()
			for range 10000 {
				h.Add("c", &discard{}, asked)
			}
			info := &protocol.ClientInfo{Client: "x"}
			for b.Loop() {
				h.Broadcast(&Event{Channel: "c", Kind: KindJoin, Client: info}, nil)
			}
		})
	}
}

func TestBroadcastEncodesOncePerFormat(t *testing.T) {
	h := New()
	full1, full2, plain := &recorder{}, &recorder{}, &recorder{format: FormatPlain}
	other := &recorder{}
	h.Add("c", full1, true)
	h.Add("c", full2, false)
	h.Add("c", plain, true)
	h.Add("d", other, true)
	pub := &protocol.Publication{Offset: 1, Data: []byte(`{"text":"hi"}`)}
	if n := h.Broadcast(&Event{Channel: "c", Kind: KindPublication, Pub: pub}, nil); n != 3 {
		t.Fatalf("Broadcast reached %d subscribers, want 3", n)
	}
	want := `{"push":"publication","channel":"c","pub":{"offset":1,"data":{"text":"hi"}}}`
	if string(full1.got[0]) != want {
		t.Fatalf("full protocol bytes = %s, want %s", full1.got[0], want)
	}
	if &full1.got[0][0] != &full2.got[0][0] {
		t.Error("two subscribers of one format got separately encoded bytes")
	}
	if string(plain.got[0]) != "hi" {
		t.Errorf("plain bytes = %q, want hi", plain.got[0])
	}
	if len(other.got) != 0 {
		t.Error("a subscriber of another channel received the broadcast")
	}
	if n := h.Broadcast(&Event{Channel: "c", Kind: KindJoin, Client: &protocol.ClientInfo{Client: "x"}}, nil); n != 1 {
		t.Fatalf("a join was queued by %d subscribers, want 1: the full-protocol one of the 2 that asked (plain has no join)", n)
	}
	if len(full2.got) != 1 {
		t.Errorf("a subscriber that did not ask for joins got %q", full2.got[1:])
	}
	if plain.got[1] != nil {
		t.Errorf("plain form of a join = %q, want none", plain.got[1])
	}
	if string(full1.got[1]) != `{"push":"join","channel":"c","client":{"client":"x"}}` {
		t.Errorf("join = %s", full1.got[1])
	}
}

// A registered format is encoded by its encoder, once per event however
// many subscribers read it.
//
// The format is registered once per process (formats are few and never
// unregistered), so that the test runs any number of times (-count).
var (
	customCalls  int
	customFormat = RegisterFormat(func(ev *Event) []byte {
		customCalls++
		if ev.Kind != KindPublication {
			return nil
		}
		return append([]byte("custom:"), ev.Pub.Data...)
	})
)

func TestRegisterFormat(t *testing.T) {
	customCalls = 0
	f := customFormat
	pub := &Event{Channel: "c", Kind: KindPublication, Pub: &protocol.Publication{Offset: 1, Data: []byte(`1`)}}
	r1, r2 := &recorder{format: f}, &recorder{format: f}
	r1.Deliver(pub, nil)
	r2.Deliver(pub, nil)
	join := &Event{Channel: "c", Kind: KindJoin, Client: &protocol.ClientInfo{Client: "x"}}
	r1.Deliver(join, nil)
	r2.Deliver(join, nil)
	if customCalls != 2 {
		t.Errorf("encoder called %d times for 2 events read twice each, want 2", customCalls)
	}
	if string(r1.got[0]) != "custom:1" || &r1.got[0][0] != &r2.got[0][0] {
		t.Errorf("got %q and %q, want one shared custom:1", r1.got[0], r2.got[0])
	}
	if r1.got[1] != nil || string(pub.Bytes(FormatProtocol)) == "" {
		t.Errorf("join encoded as %q, want nothing; the built-in formats still work", r1.got[1])
	}
}

type discard struct{ format Format }

func (d *discard) Deliver(ev *Event, _ *outbox.Batch) bool { return ev.Bytes(d.format) != nil }

// BenchmarkBroadcast measures the hub's share of fan-out: per-delivery cost
// with the encoding amortised over all subscribers.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := New()
			for range n {
				h.Add("c", &discard{}, false)
			}
			pub := &protocol.Publication{Offset: 1, Data: []byte(`{"text":"0123456789012345678901234567890123456789012345678901"}`)}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.Broadcast(&Event{Channel: "c", Kind: KindPublication, Pub: pub}, nil)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// TestBroadcastAllocatesPerEventNotPerDelivery checks that a broadcast to
// 10,000 subscribers allocates no more than one to 10: nothing per delivery.
// (A stray allocation of the runtime may show in either count.)
func TestBroadcastAllocatesPerEventNotPerDelivery(t *testing.T) {
	allocs := func(n int) float64 {
		h := New()
		for range n {
			h.Add("c", &discard{}, false)
		}
		pub := &protocol.Publication{Offset: 1, Data: []byte(`{"text":"hi"}`)}
		return testing.AllocsPerRun(100, func() {
			h.Broadcast(&Event{Channel: "c", Kind: KindPublication, Pub: pub}, nil)
		})
	}
	few, many := allocs(10), allocs(10000)
	if perDelivery := (many - few) / (10000 - 10); perDelivery >= 0.001 {
		t.Errorf("a broadcast to 10,000 subscribers allocates %v times, to 10 %v times: %.3f per delivery, want 0", many, few, perDelivery)
	}
}
