package protocol

import (
	"encoding/json"
	"testing"
)

// The hot paths of the codec: a publication is encoded once per broadcast
// (and format), a publish command is decoded once per publish.
//
//	go test -run '^$' -bench . -benchmem ./protocol/

var benchData = json.RawMessage(`{"text":"0123456789012345678901234567890123456789012345678901"}`)

func BenchmarkAppendPush(b *testing.B) {
	pub := &Publication{Offset: 123456, Time: 1767225600000, Data: benchData,
		From: &ClientInfo{Client: "QPDLTPIMVQHFI7ZR2TQ3NW3SFU", Info: json.RawMessage(`{"name":"bench"}`)}}
	p := &Push{Type: PushPublication, Channel: "chat:bench", Pub: pub}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendPush(buf[:0], p); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodePublish(b *testing.B) {
	line := []byte(`{"id":12345,"method":"publish","params":{"channel":"chat:bench","data":` + string(benchData) + `}}`)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		cmd, err := DecodeCommand(line)
		if err != nil {
			b.Fatal(err)
		}
		var p PublishParams
		if err := DecodeParams(cmd, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendReply(b *testing.B) {
	res := StreamPosition{Offset: 123456, Epoch: "Xq3bXsLq"}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendReply(buf[:0], 12345, res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlainText(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if len(PlainText(benchData)) == 0 {
			b.Fatal("no text")
		}
	}
}

func BenchmarkLines(b *testing.B) {
	frame := []byte(`{"id":1,"method":"ping"}` + "\n" + `{"id":2,"method":"ping"}` + "\n" + `{"id":3,"method":"ping"}`)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		Lines(frame, func([]byte) bool { n++; return true })
		if n != 3 {
			b.Fatal(n)
		}
	}
}
