package pusher

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// FuzzDecodeMessage checks that any frame decodes to a valid message or an
// error, never a panic, and that what decodes survives a round trip.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"event":"pusher:ping","data":{}}`,
		`{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:00"}}`,
		`{"event":"pusher:subscribe","data":"{\"channel\":\"news\"}"}`,
		`{"event":"client-x","channel":"private-a","data":{"a":[1,2]}}`,
		`{"event":"","channel":"x"}`,
		`{"event":"e","channel":"a;b"}`,
		`[1,2]`, `null`, `{`, `"str"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := decodeMessage(frame)
		if err != nil {
			return
		}
		if m.Event == "" || len(m.Event) > maxEventLength {
			t.Fatalf("decoded event %q", m.Event)
		}
		if m.Channel != "" && validateChannel(m.Channel) != nil {
			t.Fatalf("decoded invalid channel %q", m.Channel)
		}
		var d subscribeData
		_ = decodeData(m.Data, &d)
		again, err := decodeMessage(encode(m))
		if err != nil || again.Event != m.Event || again.Channel != m.Channel {
			t.Fatalf("round trip of %+v: %+v, %v", m, again, err)
		}
		if len(m.Data) > 0 && !json.Valid(m.Data) {
			t.Fatalf("data %q is not JSON", m.Data)
		}
	})
}

// FuzzParseUserData checks that any user_data gives a valid user or an
// error, never a panic.
func FuzzParseUserData(f *testing.F) {
	for _, s := range []string{`{"id":"ann","user_info":{"name":"Ann"}}`, `{"id":7}`, `{"id":""}`, `{}`, `null`, `"x"`, `{"id":null}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		user, info, err := parseUserData(s)
		if err != nil {
			return
		}
		if user == "" || len(user) > maxUserIDLength || len(info) > maxUserInfo || len(s) > maxUserData {
			t.Fatalf("parsed %q: user %q, info %d bytes", s, user, len(info))
		}
	})
}

// FuzzEncodeEvent checks the mapping of any publication to a Pusher
// message: never a panic, always one valid JSON message with an event;
// an envelope read in its canonical form (without decoding) gives what
// decoding it gives; anything else is DefaultEvent with the publication's
// data as a string; and an event made envelope by publicationData comes
// back as it was.
func FuzzEncodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"pusher_event":"e","data":"{\"a\":1}"}`,
		`{"pusher_event":"client-e","user_id":"u","data":{"a":[1,2]}}`,
		`{"pusher_event":"e"}`,
		`{"pusher_event":"e\"\\u00e9","user_id":"\u2028","data":null}`,
		`{"pusher_event":"e","data":1,"user_id":"u"}`,
		`{"pusher_event":"e","data":1,"channel":"x"}`,
		`{"pusher_event":"e","data":1}}`,
		`{"event":"e","data":"x"}`,
		`{"pusher_event":""}`, `{"pusher_event":"\x01"}`, "{\"pusher_event\":\"\xff\"}",
		`[1]`, `"s"`, `null`, `{`, ``,
	} {
		f.Add([]byte(s), "name", "user")
	}
	f.Fuzz(func(t *testing.T, d []byte, name, user string) {
		ev := &hub.Event{Channel: "pusher:news", Kind: hub.KindPublication, Pub: &protocol.Publication{Data: d}}
		got := checkMessage(t, encodeEvent(ev))
		e, u, data, ok := cutEnvelope(d)
		de, du, ddata, dok := decodeEnvelope(d)
		switch {
		case ok && !dok:
			t.Fatalf("%q: cut as an envelope, not decoded as one", d)
		case ok && (!sameJSON(e, de) || !sameJSON(data, ddata) || !sameJSON(u, du)):
			t.Fatalf("%q: cut as %s %s %s, decoded as %s %s %s", d, e, u, data, de, du, ddata)
		case !dok && (got.Event != DefaultEvent || got.Data != valid(d)):
			t.Fatalf("%q: not an envelope, encoded as %+v", d, got)
		}
		if name == "" || !utf8.ValidString(name) || !utf8.ValidString(user) {
			return
		}
		data, _ = json.Marshal(string(d))
		ev.Pub.Data = publicationData(name, data, user)
		got = checkMessage(t, encodeEvent(ev))
		if got.Event != name || got.UserID != user || got.Data != valid(d) {
			t.Fatalf("event %q of %q with data %q came back as %+v", name, user, d, got)
		}
	})
}

// valid returns b as a string with each byte that is not UTF-8 made
// U+FFFD, as JSON encoders do.
func valid(b []byte) string { return string([]rune(string(b))) }

// decoded is a Pusher message as a client reads it.
type decoded struct {
	Event, Channel, UserID string
	Data                   any // the data; a string as it is
}

// checkMessage decodes a Pusher message, failing on an invalid one.
func checkMessage(t *testing.T, msg []byte) decoded {
	t.Helper()
	var m struct {
		Event   string          `json:"event"`
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
		UserID  string          `json:"user_id"`
	}
	if err := json.Unmarshal(msg, &m); err != nil || m.Event == "" || m.Channel != "news" {
		t.Fatalf("message %q: %v", msg, err)
	}
	out := decoded{Event: m.Event, Channel: m.Channel, UserID: m.UserID}
	if m.Data != nil {
		var s string
		if json.Unmarshal(m.Data, &s) == nil {
			out.Data = s
		} else if err := json.Unmarshal(m.Data, &out.Data); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameJSON reports whether a and b are the same JSON value (both absent:
// the same).
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
