package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary frames through what the server does with a
// client frame: split into lines, decode each command and its params. It
// must never panic, and every failure must be a bad-request error.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(`{"id":1,"method":"connect","params":{"name":"alice"}}`))
	f.Add([]byte("{\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"chat:a\",\"since\":{\"offset\":3,\"epoch\":\"x\"},\"history\":5}}\n{\"id\":3,\"method\":\"ping\"}"))
	f.Add([]byte(`{"id":4,"method":"publish","params":{"channel":"chat:a","data":{"text":"hi"}}}`))
	f.Add([]byte(`{"id":5,"method":"history","params":{"channel":"a","limit":-1,"since":null}}`))
	f.Add([]byte(`{"id":1e3,"method":"x","params":{}}`))
	f.Add([]byte("\n\n{]"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		Lines(frame, func(line []byte) bool {
			cmd, err := DecodeCommand(line)
			if err != nil {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("DecodeCommand error %v is not a bad request", err)
				}
				return true
			}
			if cmd.ID == 0 || cmd.Method == "" {
				t.Fatalf("DecodeCommand accepted %+v", cmd)
			}
			for _, dst := range []any{&ConnectParams{}, &SubscribeParams{}, &PublishParams{}, &HistoryParams{}, &ChannelParams{}} {
				if err := DecodeParams(cmd, dst); err != nil && !errors.Is(err, ErrBadRequest) {
					t.Fatalf("DecodeParams error %v is not a bad request", err)
				}
			}
			var p PublishParams
			if DecodeParams(cmd, &p) == nil && len(p.Data) > 0 && !json.Valid(p.Data) {
				t.Fatalf("decoded invalid data %q", p.Data)
			}
			_ = ValidateChannel(p.Channel)
			return true
		})
	})
}

// FuzzPlainText checks that plain text survives the round trip through its
// JSON form and that PlainText never panics on arbitrary data.
func FuzzPlainText(f *testing.F) {
	f.Add([]byte("hello"), []byte(`{"text":"x"}`))
	f.Add([]byte("<b>\u0000"), []byte(`{"text":1}`))
	f.Fuzz(func(t *testing.T, text, data []byte) {
		_ = PlainText(data)
		got := PlainText(PlainData(text))
		if json.Valid(PlainData(text)) == false {
			t.Fatalf("PlainData(%q) is not JSON", text)
		}
		if string(got) != string([]rune(string(text))) {
			t.Fatalf("round trip of %q = %q", text, got)
		}
	})
}
