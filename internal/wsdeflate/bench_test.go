package wsdeflate

import (
	"bytes"
	"testing"
)

func BenchmarkInflate1K(b *testing.B) {
	var c Compressor
	msg := append([]byte(`{"push":"publication","channel":"bench-0","pub":{"offset":1,"data":{"text":"`), bytes.Repeat([]byte("x"), 1000)...)
	msg = append(msg, `"}}}`...)
	p := c.Compress(nil, msg)
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = Inflate(dst[:0], p, 1<<20)
	}
}

func BenchmarkFrame1K(b *testing.B) {
	var c Compressor
	msg := append([]byte(`{"push":"publication","channel":"bench-0","pub":{"offset":1,"data":{"text":"`), bytes.Repeat([]byte("x"), 1000)...)
	msg = append(msg, `"}}}`...)
	b.ReportAllocs()
	for b.Loop() {
		c.Frame(nil, msg)
	}
}
