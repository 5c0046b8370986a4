package reorder

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

func ev(group, key string, seq uint64, source string) Event[string] {
	return Event[string]{Group: group, Key: key, Seq: seq, Source: source, Value: fmt.Sprintf("%s/%s%d@%s", group, key, seq, source)}
}

func values(es []Event[string]) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Value)
	}
	return strings.Join(s, " ")
}

func newBuffer() *Buffer[string] { return New[string](time.Second, 5*time.Second, time.Minute) }

// check adds events at now and fails t unless Ready at now gives want.
func check(t *testing.T, b *Buffer[string], now time.Time, want string, add ...Event[string]) {
	t.Helper()
	for _, e := range add {
		b.Add(e, now)
	}
	if got := values(b.Ready(now)); got != want {
		t.Fatalf("at %v: ready %q, want %q", now.Sub(t0), got, want)
	}
}

// TestCrossedNodes is the case the package is for: node A decides a
// channel's last member left (members 2) and the channel vacated
// (occupancy 2), node B then occupies it (occupancy 3) and adds a member
// (members 3), and B's events reach the log first.
func TestCrossedNodes(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "c/occ1@A c/mem1@A", ev("c", "occ", 1, "A"), ev("c", "mem", 1, "A"))
	// B's occupied waits for occupancy 2; its member waits behind it
	// (same source) although members 3 is due after members 2 only.
	check(t, b, t0, "", ev("c", "occ", 3, "B"), ev("c", "mem", 3, "B"))
	check(t, b, t0.Add(time.Millisecond), "c/mem2@A c/occ2@A c/occ3@B c/mem3@B", ev("c", "mem", 2, "A"), ev("c", "occ", 2, "A"))
	if b.Len() != 0 {
		t.Fatalf("%d held, want none", b.Len())
	}
}

// TestSourceOrder: an event that is due waits behind an earlier event of
// its source that is not, so that a node's channel_occupied is never
// overtaken by the member_added it decided after it.
func TestSourceOrder(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "g/occ1@A", ev("g", "occ", 1, "A"))
	check(t, b, t0, "g/other1@C", ev("g", "occ", 3, "B"), ev("g", "mem", 1, "B"), ev("g", "other", 1, "C"))
	check(t, b, t0, "g/occ2@A g/occ3@B g/mem1@B", ev("g", "occ", 2, "A"))
}

// TestGroupsIndependent: a group waiting for a number does not hold up
// another.
func TestGroupsIndependent(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "x/k1@A", ev("x", "k", 1, "A"), ev("x", "k", 3, "A"))
	check(t, b, t0, "y/k1@A y/k2@A", ev("y", "k", 1, "A"), ev("y", "k", 2, "A"))
	if held := values(b.Flush(t0)); held != "x/k3@A" {
		t.Fatalf("held %q, want x/k3@A", held)
	}
}

// TestGap: a missing number is waited for Gap, then given up on; the
// event that comes later with it goes at once.
func TestGap(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "c/k1@A", ev("c", "k", 1, "A"), ev("c", "k", 3, "A"), ev("c", "j", 1, "A"))
	check(t, b, t0.Add(4*time.Second), "")
	check(t, b, t0.Add(5*time.Second), "c/k3@A c/j1@A")
	check(t, b, t0.Add(6*time.Second), "c/k2@B c/k4@A", ev("c", "k", 2, "B"), ev("c", "k", 4, "A"))
}

// TestUnknownStart: a Buffer that begins in the middle of a numbering
// waits Wait for lower numbers, then goes on from the lowest it holds.
func TestUnknownStart(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "", ev("c", "k", 8, "B"))
	check(t, b, t0.Add(500*time.Millisecond), "", ev("c", "k", 7, "A"))
	check(t, b, t0.Add(time.Second), "")
	check(t, b, t0.Add(1500*time.Millisecond), "c/k7@A c/k8@B")
}

// TestRestart: a number not above the last handed on goes at once (the
// counter began again, or a new reader of the log reads an event again).
func TestRestart(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "c/k1@A c/k2@A", ev("c", "k", 1, "A"), ev("c", "k", 2, "A"))
	check(t, b, t0, "c/k1@A c/k2@A", ev("c", "k", 1, "A"), ev("c", "k", 2, "A"))
	check(t, b, t0, "c/k0@A", ev("c", "k", 0, "A"))
}

// TestForget: a key idle for Forget is forgotten: its next event is
// treated as one of an unknown numbering.
func TestForget(t *testing.T) {
	b := newBuffer()
	check(t, b, t0, "c/k1@A", ev("c", "k", 1, "A"))
	later := t0.Add(2 * time.Minute)
	check(t, b, later, "", ev("c", "k", 3, "A"))
	check(t, b, later.Add(time.Second), "c/k3@A")
}

func TestFlush(t *testing.T) {
	b := newBuffer()
	b.Add(ev("c", "k", 3, "A"), t0)
	b.Add(ev("c", "k", 2, "B"), t0)
	b.Add(ev("d", "k", 5, "A"), t0)
	got := b.Flush(t0)
	slices.SortFunc(got, func(a, b Event[string]) int { return strings.Compare(a.Group, b.Group) })
	if v := values(got); v != "c/k2@B c/k3@A d/k5@A" {
		t.Fatalf("flush %q", v)
	}
	if b.Len() != 0 || len(b.Ready(t0)) != 0 {
		t.Fatal("events left after Flush")
	}
}

// TestShuffled: events of several keys and sources, each source's in
// order, interleaved at random, come out in number order per key and in
// order per source, none lost, none waiting.
func TestShuffled(t *testing.T) {
	for round := range 200 {
		r := rand.New(rand.NewPCG(uint64(round), 1))
		// Number events of two keys across three sources, as scripts in
		// Redis would: the decision order is a random interleaving.
		var bySource [3][]Event[string]
		seq := map[string]uint64{}
		for range 30 {
			k := []string{"occ", "mem"}[r.IntN(2)]
			src := r.IntN(3)
			seq[k]++
			bySource[src] = append(bySource[src], ev("c", k, seq[k], fmt.Sprint(src)))
		}
		b := newBuffer()
		var out []Event[string]
		for now := t0; ; now = now.Add(time.Millisecond) {
			var left []int
			for i := range bySource {
				if len(bySource[i]) > 0 {
					left = append(left, i)
				}
			}
			if len(left) == 0 {
				break
			}
			i := left[r.IntN(len(left))]
			b.Add(bySource[i][0], now)
			bySource[i] = bySource[i][1:]
			out = append(out, b.Ready(now)...)
		}
		if b.Len() != 0 {
			t.Fatalf("round %d: %d events still held", round, b.Len())
		}
		next := map[string]uint64{"occ": 1, "mem": 1}
		for _, e := range out {
			if e.Seq != next[e.Key] {
				t.Fatalf("round %d: %s out of order in %s", round, e.Value, values(out))
			}
			next[e.Key]++
		}
	}
}

// BenchmarkInOrder: events of 1000 channels, two keys each, arriving in
// order from four sources, handed on as they come (ns per event).
func BenchmarkInOrder(b *testing.B) {
	buf := newBuffer()
	seq := make([]uint64, 2000)
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprint("ch", i)
	}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := i % 2000
		seq[k]++
		buf.Add(Event[string]{Group: names[k/2], Key: []string{"o", "u"}[k%2], Seq: seq[k], Source: names[i%4]}, now)
		if len(buf.Ready(now)) != 1 {
			b.Fatal("an event in order was held")
		}
	}
}
