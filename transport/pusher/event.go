package pusher

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// This file maps redcast publications to Pusher events and back.
//
// A Pusher event (a client event, an event of the HTTP API, a member
// event) is published as a redcast publication whose data is an envelope:
// a JSON object with a non-empty string "pusher_event" (the event's name),
// optionally "user_id" (a string: the sender of a client event on a
// presence channel) and "data" (any JSON), and no other member. Pusher
// clients get that event back as it was; redcast clients see the envelope.
// Any other publication (from redcast's own clients or API), whatever its
// members, reaches Pusher clients as the event DefaultEvent, its data the
// publication's data as a JSON string.
//
// Envelopes are written in one canonical form (publicationData):
// {"pusher_event":NAME[,"user_id":USER][,"data":DATA]}, DATA compact, so
// that each broadcast turns one into a Pusher message by copying its
// parts, without decoding and encoding JSON (encodeEvent). An envelope in
// another form (a backend's, through redcast's API) is decoded.

// DefaultEvent is the Pusher event of a publication that is not an
// envelope.
const DefaultEvent = "redcast:publication"

// envelopeKey names the event in an envelope.
const envelopeKey = "pusher_event"

// publicationData returns the envelope of an event, in the canonical
// form. data must be valid JSON (or empty: no data).
func publicationData(event string, data json.RawMessage, userID string) []byte {
	b := make([]byte, 0, len(`{"pusher_event":,"user_id":,"data":}`)+len(event)+len(userID)+len(data)+8)
	b = append(b, `{"`+envelopeKey+`":`...)
	b = protocol.AppendJSONString(b, event)
	if userID != "" {
		b = append(b, `,"user_id":`...)
		b = protocol.AppendJSONString(b, userID)
	}
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		buf := bytes.NewBuffer(b)
		if json.Compact(buf, data) != nil {
			buf.WriteString("null") // not JSON: a caller's bug, kept out of the envelope
		}
		b = buf.Bytes()
	}
	return append(b, '}')
}

// format is the hub format of Pusher clients: each event is encoded once
// per broadcast for all of them.
var format = hub.RegisterFormat(encodeEvent)

// encodeEvent is the Pusher form of a hub event: a publication as the
// event it carries (see above), in the channel named without its
// namespace. Joins and leaves have no Pusher form (Pusher's presence is by
// user, not by connection).
func encodeEvent(ev *hub.Event) []byte {
	if ev.Kind != hub.KindPublication {
		return nil
	}
	_, ch, ok := strings.Cut(ev.Channel, string(protocol.NamespaceSeparator))
	if !ok {
		return nil
	}
	d := ev.Pub.Data
	event, user, data, ok := cutEnvelope(d)
	if !ok {
		event, user, data, ok = decodeEnvelope(d)
	}
	b := make([]byte, 0, len(`{"event":,"channel":"","data":,"user_id":}`)+len(ch)+len(event)+len(user)+len(data)+len(d)/8+16)
	b = append(b, `{"event":`...)
	if !ok {
		b = append(b, `"`+DefaultEvent+`"`...) // no character to escape
		b = append(b, `,"channel":`...)
		b = protocol.AppendJSONString(b, ch)
		b = append(b, `,"data":`...)
		b = protocol.AppendJSONString(b, d)
		return append(b, '}')
	}
	b = append(b, event...)
	b = append(b, `,"channel":`...)
	b = protocol.AppendJSONString(b, ch)
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	if len(user) > 0 {
		b = append(b, `,"user_id":`...)
		b = append(b, user...)
	}
	return append(b, '}')
}

// cutEnvelope returns the parts of an envelope in the canonical form, as
// JSON: the event's name and its user (strings, quoted; user nil when
// there is none) and its data (nil when there is none). ok is false for
// anything else, which may still be an envelope in another form.
func cutEnvelope(d []byte) (event, user, data []byte, ok bool) {
	rest, found := bytes.CutPrefix(d, []byte(`{"`+envelopeKey+`":`))
	if !found {
		return nil, nil, nil, false
	}
	if event, rest = cutString(rest); len(event) <= 2 { // "" or not a string
		return nil, nil, nil, false
	}
	if rest, found = bytes.CutPrefix(rest, []byte(`,"user_id":`)); found {
		if user, rest = cutString(rest); len(user) <= 2 {
			return nil, nil, nil, false
		}
	}
	if rest, found = bytes.CutPrefix(rest, []byte(`,"data":`)); found {
		// The data is the rest but the closing brace: one JSON value
		// (not a value followed by more members).
		if len(rest) < 2 || rest[len(rest)-1] != '}' || !json.Valid(rest[:len(rest)-1]) {
			return nil, nil, nil, false
		}
		data, rest = rest[:len(rest)-1], rest[len(rest)-1:]
	}
	if len(rest) != 1 || rest[0] != '}' {
		return nil, nil, nil, false
	}
	return event, user, data, true
}

// cutString returns the JSON string at the start of b, quotes included,
// and what follows it; string nil when b does not start with a valid
// one. Control characters, invalid escapes and invalid UTF-8 are refused.
func cutString(b []byte) (string_, rest []byte) {
	if len(b) == 0 || b[0] != '"' {
		return nil, b
	}
	for i := 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return b[:i+1], b[i+1:]
		case c < 0x20:
			return nil, b
		case c == '\\':
			if i+1 >= len(b) {
				return nil, b
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return nil, b
				}
				i += 6
			default:
				return nil, b
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, b
			}
			i += size
		}
	}
	return nil, b
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// decodeEnvelope is cutEnvelope for an envelope in any form (members in
// any order, spaces): it decodes it, and returns its parts re-encoded.
func decodeEnvelope(d []byte) (event, user, data []byte, ok bool) {
	d = bytes.TrimSpace(d)
	if len(d) == 0 || d[0] != '{' || !bytes.Contains(d, []byte(`"`+envelopeKey+`"`)) {
		return nil, nil, nil, false // the common case of a plain publication: no decoding
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(d, &members) != nil {
		return nil, nil, nil, false
	}
	var name, userID string
	for k, v := range members {
		switch k {
		case envelopeKey:
			if json.Unmarshal(v, &name) != nil || name == "" {
				return nil, nil, nil, false
			}
		case "user_id":
			if json.Unmarshal(v, &userID) != nil {
				return nil, nil, nil, false
			}
		case "data":
			var buf bytes.Buffer
			if json.Compact(&buf, v) != nil {
				return nil, nil, nil, false
			}
			data = buf.Bytes()
		default:
			return nil, nil, nil, false
		}
	}
	if name == "" {
		return nil, nil, nil, false
	}
	if userID != "" {
		user = protocol.AppendJSONString(nil, userID)
	}
	return protocol.AppendJSONString(nil, name), user, data, true
}
