package hub

import (
	"github.com/redcast/redcast/protocol"
)

// Format is a wire format a subscriber reads.
type Format uint8

const (
	// FormatProtocol is one JSON push line of the full protocol.
	FormatProtocol Format = iota
	// FormatPlain is the text of plain mode: a publication's "text", or its
	// data as JSON. Join and leave have no plain form.
	FormatPlain
	numBuiltin
)

// maxFormats bounds the formats: the built-in ones and those of other
// protocols (RegisterFormat).
const maxFormats = 4

// encoders are the encoders of the registered formats, by Format.
var encoders [maxFormats]func(*Event) []byte

// numFormats is how many formats there are (built-in and registered).
var numFormats = numBuiltin

// RegisterFormat adds the wire format of another protocol spoken on the
// same hub (Pusher's, in package transport/pusher): encode returns an
// event's message in it, or nil when the event has none; it is called at
// most once per broadcast, and must not keep ev. Call RegisterFormat from
// a package-level variable or an init function only: formats are fixed
// once the program runs. It panics past the few formats the hub holds.
func RegisterFormat(encode func(ev *Event) []byte) Format {
	if numFormats >= maxFormats {
		panic("hub: too many formats")
	}
	f := numFormats
	encoders[f] = encode
	numFormats++
	return f
}

// Kind says what an Event carries.
type Kind uint8

const (
	KindPublication Kind = iota
	KindJoin
	KindLeave
)

// Event is one thing that happened in a channel, handed to every local
// subscriber. Subscribers must treat it as read-only and may keep Pub and
// Client (they are never modified), but not the Event itself.
type Event struct {
	Channel string
	Kind    Kind
	Pub     *protocol.Publication   // KindPublication
	Pos     protocol.StreamPosition // KindPublication: the position after Pub
	Client  *protocol.ClientInfo    // KindJoin, KindLeave

	encoded [maxFormats][]byte
	done    [maxFormats]bool
	// framed holds the frames of Framed, by format: one per Framer.
	framed [maxFormats][]framing
	// prev and cur are the data of the channel's publication before Pub
	// and of Pub, as the wire carries them (compact JSON), which the hub
	// sets while the channel has a subscriber that wants deltas and it
	// broadcast that publication (see deltaState.track); nil otherwise.
	prev, cur []byte
	// delta, deltaDone and framedDelta are Delta's and FramedDelta's.
	delta       []byte
	deltaDone   bool
	framedDelta []framing
}

// framing is a message framed by fr.
type framing struct {
	fr Framer
	b  []byte
}

// Framer turns a message into a whole frame of a transport's own: a
// WebSocket frame, compressed with permessage-deflate when that pays
// (package internal/wsdeflate). Messages shorter than Threshold are not
// framed: the transport joins them with others. It must be safe for
// concurrent use.
type Framer interface {
	Frame(dst, msg []byte) []byte
	Threshold() int
}

// Framed returns the event encoded in format f (see Bytes) and made into a
// frame by fr, once per broadcast for each format and framer however many
// subscribers read it: the connections of a broadcast that negotiated the
// same compression share one compressed frame. A message shorter than
// fr's threshold is returned as Bytes returns it. It returns nil when the
// event has no form in f. Like Bytes, it is not safe for concurrent use.
func (ev *Event) Framed(f Format, fr Framer) []byte {
	return frameOnce(&ev.framed[f], fr, func() []byte { return ev.Bytes(f) })
}

// frameOnce returns the message of msg framed by fr, from the frames made
// already (*list) or framed now and added to them.
func frameOnce(list *[]framing, fr Framer, msg func() []byte) []byte {
	for _, x := range *list {
		if x.fr == fr {
			return x.b
		}
	}
	m := msg()
	if m == nil || len(m) < fr.Threshold() {
		return m
	}
	b := fr.Frame(nil, m)
	*list = append(*list, framing{fr, b})
	return b
}

// Bytes returns the event encoded in format f, encoding it on first use so
// that a broadcast encodes once however many subscribers read it. It returns
// nil when the event has no form in f. Bytes is not safe for concurrent use;
// the hub calls subscribers one at a time.
func (ev *Event) Bytes(f Format) []byte {
	if ev.done[f] {
		return ev.encoded[f]
	}
	ev.done[f] = true
	switch f {
	case FormatProtocol:
		p := protocol.Push{Channel: ev.Channel}
		switch ev.Kind {
		case KindPublication:
			p.Type, p.Pub = protocol.PushPublication, ev.Pub
		case KindJoin:
			p.Type, p.Client = protocol.PushJoin, ev.Client
		case KindLeave:
			p.Type, p.Client = protocol.PushLeave, ev.Client
		}
		ev.encoded[f], _ = protocol.AppendPush(nil, &p) // plain structs and valid JSON: cannot fail
	case FormatPlain:
		if ev.Kind == KindPublication {
			ev.encoded[f] = protocol.PlainText(ev.Pub.Data)
		}
	default:
		if enc := encoders[f]; enc != nil {
			ev.encoded[f] = enc(ev)
		}
	}
	return ev.encoded[f]
}
