package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeCommand(t *testing.T) {
	tests := []struct {
		line    string
		wantID  uint32
		wantErr bool
	}{
		{`{"id":1,"method":"ping"}`, 1, false},
		{`{"id":2,"method":"publish","params":{"channel":"a","data":1}}`, 2, false},
		{`{"id":3,"method":"ping","params":null}`, 3, false},
		{`{"id":0,"method":"ping"}`, 0, true},
		{`{"method":"ping"}`, 0, true},
		{`{"id":4}`, 4, true},
		{`{"id":5,"method":"ping","params":[1]}`, 5, true},
		{`{"id":6,"method":"ping","params":"x"}`, 6, true},
		{`{"id":-1,"method":"ping"}`, 0, true},
		{`{"id":7,"method":5}`, 7, true},
		{`not json`, 0, true},
		{`[]`, 0, true},
	}
	for _, tt := range tests {
		cmd, err := DecodeCommand([]byte(tt.line))
		if (err != nil) != tt.wantErr {
			t.Errorf("DecodeCommand(%s) error = %v, want error %v", tt.line, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("DecodeCommand(%s) error = %v, want code %d", tt.line, err, ErrBadRequest.Code)
		}
		if cmd.ID != tt.wantID {
			t.Errorf("DecodeCommand(%s) id = %d, want %d", tt.line, cmd.ID, tt.wantID)
		}
	}
}

func TestLines(t *testing.T) {
	var got []string
	Lines([]byte("a\n\n  b  \r\nc"), func(l []byte) bool { got = append(got, string(l)); return true })
	if strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("Lines = %q", got)
	}
	got = nil
	Lines([]byte("a\nb\nc"), func(l []byte) bool { got = append(got, string(l)); return len(got) < 2 })
	if len(got) != 2 {
		t.Fatalf("Lines did not stop: %q", got)
	}
}

func TestValidateChannel(t *testing.T) {
	for _, ok := range []string{"a", "chat:general", "user#alice,bob", "x/y.z@w=v~_-", strings.Repeat("a", MaxChannelLength)} {
		if err := ValidateChannel(ok); err != nil {
			t.Errorf("ValidateChannel(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "é", "a\n", `a"b`, "a?b", strings.Repeat("a", MaxChannelLength+1)} {
		if err := ValidateChannel(bad); !errors.Is(err, ErrInvalidChannel) {
			t.Errorf("ValidateChannel(%q) = %v, want code %d", bad, err, ErrInvalidChannel.Code)
		}
	}
	if Namespace("chat:a:b") != "chat" || Namespace("news") != "" {
		t.Error("Namespace splits at the first ':'")
	}
}

func TestPlainTextRoundTrip(t *testing.T) {
	for _, s := range []string{"hello", "", `<img src=x onerror=alert(1)>`, "line\nbreak", "\"quoted\" \\ \u2028"} {
		if got := string(PlainText(PlainData([]byte(s)))); got != s {
			t.Errorf("PlainText(PlainData(%q)) = %q", s, got)
		}
	}
	if got := string(PlainText(json.RawMessage(`{"other":1}`))); got != `{"other":1}` {
		t.Errorf("PlainText of an object without text = %s", got)
	}
	if got := string(PlainText(json.RawMessage(`42`))); got != `42` {
		t.Errorf("PlainText(42) = %s", got)
	}
}

func TestReplyAndPushEncoding(t *testing.T) {
	b, err := AppendReply(nil, 7, &PublishResult{Offset: 3, Epoch: "e"})
	if err != nil || string(b) != `{"id":7,"result":{"offset":3,"epoch":"e"}}` {
		t.Fatalf("AppendReply = %s, %v", b, err)
	}
	if b := AppendError(nil, 8, ErrUnknownMethod); string(b) != `{"id":8,"error":{"code":102,"message":"unknown method"}}` {
		t.Fatalf("AppendError = %s", b)
	}
	b = DisconnectShutdown.AppendPush(nil)
	if string(b) != `{"push":"disconnect","code":3001,"reason":"server shutting down","reconnect":true}` {
		t.Fatalf("Disconnect.AppendPush = %s", b)
	}
	if b := DisconnectBadFrame.AppendPush(nil); !strings.Contains(string(b), `"reconnect":false`) {
		t.Fatalf("a terminal disconnect must say reconnect false: %s", b)
	}
	var m ServerMessage
	if err := json.Unmarshal(b, &m); err != nil || !m.IsPush() || m.Code != 3001 {
		t.Fatalf("decode push: %+v, %v", m, err)
	}
}

func TestNoHTMLEscaping(t *testing.T) {
	pub := &Publication{Offset: 1, Data: json.RawMessage(`{"text":"<b>&</b>"}`)}
	b, err := AppendPush(nil, &Push{Type: PushPublication, Channel: "c", Pub: pub})
	if err != nil || !strings.Contains(string(b), `"<b>&</b>"`) {
		t.Fatalf("push = %s, %v; want the data byte for byte", b, err)
	}
	b, err = AppendReply([]byte("x"), 1, HistoryResult{Publications: []Publication{*pub}})
	if err != nil || !strings.HasPrefix(string(b), "x{") || !strings.Contains(string(b), `"<b>&</b>"`) {
		t.Fatalf("reply = %s, %v", b, err)
	}
}
