package pusher

import (
	"encoding/json"
	"testing"
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
