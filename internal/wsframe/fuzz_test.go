package wsframe

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzFrame decodes arbitrary bytes as a frame header, as each side reads
// it, and holds the decoder to gobwas/ws's reader and the encoder to
// gobwas/ws's writer: the same header from the same bytes, a refusal of
// everything ws.CheckHeader refuses and of data frames over the limit, and
// an encoding that decodes back to the same header.
func FuzzFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'}, uint8(1))
	f.Add(AppendClientFrame(nil, ws.OpPing, []byte("p")), uint8(1))
	f.Add(AppendServerHeader(nil, ws.OpText, 300), uint8(2))
	f.Add(AppendServerHeader(nil, ws.OpBinary, 1<<20), uint8(2))
	f.Add(AppendHeader(nil, ws.Header{OpCode: ws.OpContinuation, Masked: true}), uint8(3))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, side uint8) {
		const limit = 1 << 16
		s := []ws.State{0, ws.StateServerSide, ws.StateClientSide, ws.StateServerSide | ws.StateFragmented}[side%4]
		h, err := DecodeHeader(b, s, limit)
		if len(b) < 2 || len(b) < HeaderLen(b) {
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("%d bytes of a %d-byte header: %v", len(b), HeaderLen(append(b, 0, 0)), err)
			}
			return
		}
		n := HeaderLen(b)
		var buf [ws.MaxHeaderSize]byte
		if rh, rerr := ReadHeader(bytes.NewReader(b), &buf, s, limit); rh != h || fmt.Sprint(rerr) != fmt.Sprint(err) {
			t.Fatalf("ReadHeader = %+v, %v; DecodeHeader = %+v, %v", rh, rerr, h, err)
		}
		gh, gerr := ws.ReadHeader(bytes.NewReader(b))
		if gerr != nil {
			if err == nil {
				t.Fatalf("gobwas refuses %x (%v), DecodeHeader accepts", b[:n], gerr)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrProtocol) {
			t.Fatalf("refused %x with %v, neither a protocol error nor too large", b[:n], err)
		}
		if errors.Is(err, ErrProtocol) && ws.CheckHeader(gh, s) == nil {
			t.Fatalf("refused %x with %v, but gobwas reads a valid %+v", b[:n], err, gh)
		}
		if err != nil {
			return
		}
		if h != gh {
			t.Fatalf("decoded %+v, gobwas %+v", h, gh)
		}
		if h.Length > limit && !h.OpCode.IsControl() {
			t.Fatalf("a %d-byte frame passed a %d-byte limit", h.Length, limit)
		}
		enc := AppendHeader(nil, h)
		var want bytes.Buffer
		if err := ws.WriteHeader(&want, h); err != nil || !bytes.Equal(enc, want.Bytes()) {
			t.Fatalf("encoded %+v as %x, gobwas as %x (%v)", h, enc, want.Bytes(), err)
		}
		if back, err := DecodeHeader(enc, s, limit); err != nil || back != h {
			t.Fatalf("%+v encoded and decoded is %+v, %v", h, back, err)
		}
	})
}
