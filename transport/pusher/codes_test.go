package pusher

import (
	"testing"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// Every redcast disconnect becomes the Pusher code that makes pusher-js
// do what a redcast client would: 4200-4299 reconnect at once, 4100-4199
// after a backoff, 4000-4099 never.
func TestCloseCode(t *testing.T) {
	for _, tc := range []struct {
		d    protocol.Disconnect
		want uint16
	}{
		{protocol.DisconnectShutdown, codeReconnect},
		{protocol.DisconnectForcedReconnect, codeReconnect},
		{protocol.DisconnectInsufficientState, codeReconnect},
		{protocol.DisconnectNoPong, codePongNotReceived},
		{protocol.DisconnectSlowConsumer, codeOverCapacity},
		{protocol.DisconnectConnectionLimit, codeOverCapacity},
		{protocol.DisconnectFrameTooLarge, codeUnauthorized},
		{protocol.DisconnectBadFrame, codeUnauthorized},
		{protocol.DisconnectForced, codeUnauthorized},
		{protocol.Disconnect{Code: codeUnknownApp, Reason: "x"}, codeUnknownApp},
	} {
		if got, _ := closeCode(tc.d); got != tc.want {
			t.Errorf("closeCode(%d) = %d, want %d", tc.d.Code, got, tc.want)
		}
	}
}

func TestEncodeEvent(t *testing.T) {
	pub := func(data string) *hub.Event {
		return &hub.Event{Channel: "pusher:news", Kind: hub.KindPublication, Pub: &protocol.Publication{Offset: 1, Data: []byte(data)}}
	}
	for _, tc := range []struct{ data, want string }{
		// Envelopes, canonical or not.
		{`{"pusher_event":"e","data":"{\"a\":1}"}`, `{"event":"e","channel":"news","data":"{\"a\":1}"}`},
		{`{"pusher_event":"client-e","user_id":"u","data":{"a":1}}`, `{"event":"client-e","channel":"news","data":{"a":1},"user_id":"u"}`},
		{`{"pusher_event":"e"}`, `{"event":"e","channel":"news"}`},
		{` { "data" : [1, 2], "pusher_event" : "e\u0041" } `, `{"event":"eA","channel":"news","data":[1,2]}`},
		{`{"pusher_event":"e","data":1,"user_id":"u"}`, `{"event":"e","channel":"news","data":1,"user_id":"u"}`},
		// Not envelopes: a publication whose data happens to have an
		// event, an empty name, a member more, a name not a string.
		{`{"event":"e","data":"x"}`, `{"event":"redcast:publication","channel":"news","data":"{\"event\":\"e\",\"data\":\"x\"}"}`},
		{`{"pusher_event":"","data":1}`, `{"event":"redcast:publication","channel":"news","data":"{\"pusher_event\":\"\",\"data\":1}"}`},
		{`{"pusher_event":"e","data":1,"channel":"private-x"}`, `{"event":"redcast:publication","channel":"news","data":"{\"pusher_event\":\"e\",\"data\":1,\"channel\":\"private-x\"}"}`},
		{`{"pusher_event":1}`, `{"event":"redcast:publication","channel":"news","data":"{\"pusher_event\":1}"}`},
		{`[1]`, `{"event":"redcast:publication","channel":"news","data":"[1]"}`},
		{"\"s\\u2028<\"", `{"event":"redcast:publication","channel":"news","data":"\"s\\u2028<\""}`},
	} {
		if got := string(pub(tc.data).Bytes(format)); got != tc.want {
			t.Errorf("%s encoded as %s, want %s", tc.data, got, tc.want)
		}
	}
	join := &hub.Event{Channel: "pusher:news", Kind: hub.KindJoin, Client: &protocol.ClientInfo{Client: "1.2"}}
	if got := join.Bytes(format); got != nil {
		t.Errorf("a join encoded as %s, want nothing", got)
	}
}

// BenchmarkEncodeEvent compares the once-per-broadcast encoding of a
// publication for Pusher clients with that of redcast's protocol.
func BenchmarkEncodeEvent(b *testing.B) {
	for _, tc := range []struct {
		name   string
		format hub.Format
		data   string
	}{
		{"pusher/envelope", format, `{"pusher_event":"order-shipped","data":"{\"id\":42,\"items\":[1,2,3],\"note\":\"0123456789\"}"}`},
		{"pusher/plain", format, `{"id":42,"items":[1,2,3],"note":"0123456789"}`},
		{"protocol", hub.FormatProtocol, `{"event":"order-shipped","data":"{\"id\":42,\"items\":[1,2,3],\"note\":\"0123456789\"}"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pub := &protocol.Publication{Offset: 1, Data: []byte(tc.data)}
			b.ReportAllocs()
			for b.Loop() {
				ev := &hub.Event{Channel: "pusher:orders", Kind: hub.KindPublication, Pub: pub}
				_ = ev.Bytes(tc.format)
			}
		})
	}
}
