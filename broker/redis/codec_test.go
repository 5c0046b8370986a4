package redis

import (
	"bytes"
	"strings"
	"testing"

	"github.com/redcast/redcast/protocol"
)

func TestBodyRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		name string
		from *protocol.ClientInfo
		data []byte
	}{
		{"no from", nil, []byte(`{"text":"<b>caf\u00e9 & é</b>"}`)},
		{"from", &protocol.ClientInfo{Client: "c1", User: "u:1", Info: []byte(`{"name":"a:b"}`)}, []byte(`"p1:EPOCH:x"`)},
		{"from without user and info", &protocol.ClientInfo{Client: "c1"}, []byte(`1`)},
		{"long fields", &protocol.ClientInfo{Client: long, User: long, Info: []byte(long)}, []byte(long)},
		{"empty data", nil, nil},
		{"binary", nil, []byte{0, 0x80, 0xff, ':', '\n'}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := encodeBody(1_700_000_000_123, c.from, "pub-1", c.data)
			pub, err := decodeBody(body)
			if err != nil {
				t.Fatal(err)
			}
			if pub.Publisher != "pub-1" {
				t.Errorf("publisher %q, want pub-1", pub.Publisher)
			}
			if pub.Time != 1_700_000_000_123 || !bytes.Equal(pub.Data, c.data) {
				t.Errorf("got time %d data %q, want %q", pub.Time, pub.Data, c.data)
			}
			if (pub.From == nil) != (c.from == nil) {
				t.Fatalf("from %+v, want %+v", pub.From, c.from)
			}
			if c.from != nil && (pub.From.Client != c.from.Client || pub.From.User != c.from.User || !bytes.Equal(pub.From.Info, c.from.Info)) {
				t.Errorf("from %+v, want %+v", pub.From, c.from)
			}
			// As a pub/sub message, with the prefix the Lua script writes.
			pos, rest, err := parsePublicationMessage("42:EPOCH:" + body)
			if err != nil || pos != (protocol.StreamPosition{Offset: 42, Epoch: "EPOCH"}) || rest != body {
				t.Errorf("parsePublicationMessage: %+v, %v", pos, err)
			}
		})
	}
}

func TestPresenceMessage(t *testing.T) {
	info := &protocol.ClientInfo{Client: "c1", User: "ann", Info: []byte(`{"name":"Ann"}`)}
	msg := encodePresenceMessage(msgJoin, info)
	if msg[0] != msgJoin {
		t.Fatalf("type byte %q", msg[0])
	}
	got, err := decodeInfo(msg[1:])
	if err != nil || got.Client != info.Client || got.User != info.User || string(got.Info) != string(info.Info) {
		t.Fatalf("decodeInfo: %+v, %v; want %+v", got, err, info)
	}
	if got, err := decodeInfo(encodeInfo(&protocol.ClientInfo{Client: "c"})); err != nil || got.Info != nil {
		t.Errorf("info without Info decodes as %+v, %v; want nil Info", got, err)
	}
}

func TestMalformed(t *testing.T) {
	for _, body := range []string{"", "\x01", "\x02\x00\x01", "\x01\x00\xff", "\x01\x01\x01\x05ab"} {
		if _, err := decodeBody(body); err == nil {
			t.Errorf("decodeBody(%q) succeeded", body)
		}
	}
	for _, info := range []string{"", "\x05ab", "\x01a\x09"} {
		if _, err := decodeInfo(info); err == nil {
			t.Errorf("decodeInfo(%q) succeeded", info)
		}
	}
	for _, msg := range []string{"", "1", "1:", "1::x", "x:E:b", "-1:E:b"} {
		if _, _, err := parsePublicationMessage(msg); err == nil {
			t.Errorf("parsePublicationMessage(%q) succeeded", msg)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeBody(1, &protocol.ClientInfo{Client: "c", User: "u", Info: []byte(`{}`)}, "c", []byte(`{"a":1}`)))
	f.Add(encodeBody(1, nil, "", nil))
	f.Add("\x01\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if pub, err := decodeBody(s); err == nil {
			from := pub.From
			again, err := decodeBody(encodeBody(pub.Time, from, pub.Publisher, pub.Data))
			if err != nil || !bytes.Equal(again.Data, pub.Data) {
				t.Fatalf("re-encoding %q: %v", s, err)
			}
		}
		decodeInfo(s)
		parsePublicationMessage(s)
	})
}
