package loadgen

import (
	"encoding/json"
	"testing"

	"github.com/redcast/redcast/protocol"
)

func TestStampRoundTrip(t *testing.T) {
	for _, st := range []stamp{
		{measured: true, sent: 1764390000123456789, publisher: 3, seq: 42},
		{sent: 1, publisher: 0, seq: 1},
	} {
		text := appendText(nil, st, 53)
		if len(text) != 53 {
			t.Errorf("text %q is %d bytes, want 53", text, len(text))
		}
		got, ok := parseStamp(text)
		if !ok || got != st {
			t.Errorf("parseStamp(%q) = %+v, %v; want %+v", text, got, ok, st)
		}
	}
	if text := appendText(nil, stamp{sent: 1764390000123456789, seq: 1}, 4); len(text) <= 4 {
		t.Errorf("a short size cut the stamp: %q", text)
	}
	for _, bad := range []string{"", "x1.2.3.", "m1.2.3", "m.2.3.", "m1.2.", "m12345678901234567890.0.1.", "m1.-2.3."} {
		if _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) accepted", bad)
		}
	}
}

// TestParsePublication reads what the server's own encoder writes.
func TestParsePublication(t *testing.T) {
	text := string(appendText(nil, stamp{measured: true, sent: 99, publisher: 1, seq: 7}, 40))
	data, _ := json.Marshal(map[string]string{"text": text})
	line, err := protocol.AppendPush(nil, &protocol.Push{
		Type:    protocol.PushPublication,
		Channel: "bench-0",
		Pub: &protocol.Publication{Offset: 1234, Time: 1764390000123, Data: data,
			From: &protocol.ClientInfo{Client: "C", Info: json.RawMessage(`{"name":"text"}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, head := range [][]byte{publicationHead("bench-0"), publicationHead("other"), nil} {
		off, got, ok := parsePublication(line, head)
		if !ok || off != 1234 {
			t.Fatalf("parsePublication(%s, %s) = %d, %v", line, head, off, ok)
		}
		st, ok := parseStamp(got)
		if !ok || st.seq != 7 || st.sent != 99 || st.publisher != 1 || !st.measured {
			t.Errorf("stamp %+v, %v from %q", st, ok, got)
		}
	}
	if _, _, ok := parsePublication([]byte(`{"push":"publication","pub":{"offset":x}}`), nil); ok {
		t.Error("accepted an offset without digits")
	}
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		line     string
		id       uint32
		code     int
		ok       bool
		whatItIs string
	}{
		{`{"id":17,"result":{"offset":3,"epoch":"E"}}`, 17, 0, true, "result"},
		{`{"id":2,"error":{"code":116,"message":"too many requests"}}`, 2, 116, true, "error"},
		{`{"id":5,"error":{"code":105}}`, 5, 105, true, "error without message"},
		{`{"push":"join","channel":"c"}`, 0, 0, false, "push"},
		{`{"id":99999999999,"result":{}}`, 0, 0, false, "id too large"},
	} {
		id, code, ok := parseReply([]byte(c.line))
		if id != c.id || code != c.code || ok != c.ok {
			t.Errorf("%s: parseReply(%s) = %d, %d, %v", c.whatItIs, c.line, id, code, ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"push":"publication","channel":"bench-0","pub":{"offset":7,"time":1,"data":{"text":"m1.0.1.xx"}}}`))
	f.Add([]byte(`{"id":2,"error":{"code":116,"message":"m"}}`))
	f.Add([]byte("m1764390000123456789.0.1."))
	head := publicationHead("bench-0")
	f.Fuzz(func(t *testing.T, line []byte) {
		if _, text, ok := parsePublication(line, head); ok {
			parseStamp(text)
		}
		parseReply(line)
		parseStamp(line)
	})
}
