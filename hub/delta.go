package hub

import (
	"bytes"
	"encoding/json"
	"sync/atomic"
	"unicode/utf8"

	"github.com/centrifugal/fdelta"

	"github.com/redcast/redcast/protocol"
)

// DeltaSubscriber is a Subscriber that may receive delta publications. While
// a channel has one whose WantsDelta is true, the hub keeps the channel's
// latest publication and hands it to the next broadcast as Event.Prev, so
// that the delta is computed once per publication on the node, however many
// subscribers read it. WantsDelta must not change while the subscriber is
// added.
type DeltaSubscriber interface {
	Subscriber
	WantsDelta() bool
}

func wantsDelta(s Subscriber) bool {
	d, ok := s.(DeltaSubscriber)
	return ok && d.WantsDelta()
}

// lastPub is a channel's latest publication, kept for deltas: its
// position and its data as the wire carries it.
type lastPub struct {
	offset uint64
	epoch  string
	data   []byte
}

// deltaState is what a channel keeps for its delta subscribers.
type deltaState struct {
	// n counts the subscribers that want deltas (under the shard's write
	// lock).
	n int
	// last is the latest publication broadcast while n > 0. Broadcasts of
	// one channel never run at once (see Subscriber), so the one that
	// reads it is the one that replaces it; it is atomic because they run
	// under the shard's read lock.
	last atomic.Pointer[lastPub]
}

// track gives ev the data of the channel's latest publication when ev's
// follows it, and makes ev's the latest.
func (d *deltaState) track(ev *Event) {
	ev.cur = wireData(ev.Pub.Data)
	if prev := d.last.Load(); prev != nil && prev.epoch == ev.Pos.Epoch && prev.offset+1 == ev.Pub.Offset {
		ev.prev = prev.data
	}
	d.last.Store(&lastPub{offset: ev.Pub.Offset, epoch: ev.Pos.Epoch, data: ev.cur})
}

// wireData returns data as a push carries it: compacted, as the JSON
// encoder writes a json.RawMessage. The client applies a delta to the
// bytes it received, so the delta is made between these.
func wireData(data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data))
	if json.Compact(&b, data) != nil {
		return data // brokers hold valid JSON only; keep it as it is
	}
	if b.Len() == len(data) {
		return data
	}
	return b.Bytes()
}

// Delta returns the event as a push of the full protocol whose publication
// carries, as data, a JSON string holding the Fossil delta from the data of
// the channel's previous publication to Pub's (both as the wire carries
// them), with "delta": true. It encodes it once per broadcast, like Bytes,
// and returns nil when there is no delta to send: the hub did not keep the
// previous publication (no subscriber wanted deltas, or it did not follow),
// the delta is not valid UTF-8 (a cut through a multi-byte character,
// which a JSON string cannot carry), or it is not shorter than the data.
func (ev *Event) Delta() []byte {
	if ev.deltaDone {
		return ev.delta
	}
	ev.deltaDone = true
	if ev.Kind != KindPublication || ev.prev == nil {
		return nil
	}
	d := fdelta.Create(ev.prev, ev.cur)
	if !utf8.Valid(d) {
		return nil
	}
	data := protocol.AppendJSONString(make([]byte, 0, len(d)+16), d)
	if len(data) >= len(ev.cur) {
		return nil
	}
	pub := *ev.Pub
	pub.Data, pub.Delta = data, true
	ev.delta, _ = protocol.AppendPush(nil, &protocol.Push{Type: protocol.PushPublication, Channel: ev.Channel, Pub: &pub})
	return ev.delta
}

// FramedDelta is Delta made into a frame by fr, as Framed does: once per
// broadcast and framer.
func (ev *Event) FramedDelta(fr Framer) []byte {
	return frameOnce(&ev.framedDelta, fr, ev.Delta)
}
