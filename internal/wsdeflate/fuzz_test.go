package wsdeflate

import (
	"bytes"
	"testing"
)

// FuzzInflate feeds Inflate arbitrary payloads, as a client may send: it
// must never panic, never return more than its limit, and give back what
// Compress made.
func FuzzInflate(f *testing.F) {
	var c Compressor
	f.Add(c.Compress(nil, []byte(`{"id":1,"method":"ping"}`)), 1024)
	f.Add(c.Compress(nil, bytes.Repeat([]byte("a"), 5000)), 100)
	f.Add([]byte{0x00, 0x00, 0xff, 0xff}, 10)
	f.Add([]byte{0x03, 0x00}, 10) // a final empty block
	f.Add([]byte{0xff}, 10)
	f.Fuzz(func(t *testing.T, payload []byte, limit int) {
		limit = min(max(limit, 0), 1<<20)
		out, err := Inflate(nil, payload, limit)
		if len(out) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		if err == nil {
			again, err := Inflate(nil, c.Compress(nil, out), limit)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("round trip of the output: %v", err)
			}
		}
	})
}
