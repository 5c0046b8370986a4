package wsframe

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// TestAppendFrame checks the encoder against gobwas/ws's reader at each
// length encoding.
func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 70000} {
		p := []byte(strings.Repeat("a", n))
		for _, h := range []ws.Header{
			{Fin: true, OpCode: ws.OpText},
			{OpCode: ws.OpContinuation, Rsv: 4, Masked: true, Mask: [4]byte{1, 2, 3, 4}},
			ClientHeader(ws.OpBinary, 0),
		} {
			b := AppendFrame([]byte("prefix"), h, p)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("the prefix was overwritten: %q", b[:6])
			}
			f, err := ws.ReadFrame(bytes.NewReader(b[6:]))
			if err != nil {
				t.Fatalf("%d bytes, %+v: gobwas reads %v", n, h, err)
			}
			if f.Header.Masked {
				ws.Cipher(f.Payload, f.Header.Mask, 0)
			}
			h.Length = int64(n)
			if f.Header != h || !bytes.Equal(f.Payload, p) {
				t.Fatalf("%d bytes: gobwas reads %+v, want %+v, payload equal: %v", n, f.Header, h, bytes.Equal(f.Payload, p))
			}
			if got := len(b) - 6 - n; got != ws.HeaderSize(h) {
				t.Errorf("%d bytes: header of %d bytes, gobwas says %d", n, got, ws.HeaderSize(h))
			}
		}
	}
}

func TestServerAndClientFrames(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		got := AppendServerHeader([]byte("x"), ws.OpBinary, n)
		want := AppendHeader([]byte("x"), ws.Header{Fin: true, OpCode: ws.OpBinary, Length: int64(n)})
		if !bytes.Equal(got, want) {
			t.Errorf("AppendServerHeader(%d) = %x, AppendHeader %x", n, got, want)
		}
	}
	b := AppendServerHeader(nil, ws.OpText, 3)
	b = append(b, "abc"...)
	h, err := DecodeHeader(b, ws.StateClientSide, 3)
	if err != nil || h.Masked || !h.Fin || h.OpCode != ws.OpText || h.Length != 3 {
		t.Fatalf("server frame decoded as %+v, %v", h, err)
	}
	c1 := AppendClientFrame(nil, ws.OpPing, []byte("abc"))
	c2 := AppendClientFrame(nil, ws.OpPing, []byte("abc"))
	h, err = DecodeHeader(c1, ws.StateServerSide, 0)
	if err != nil || !h.Masked || h.OpCode != ws.OpPing || h.Length != 3 {
		t.Fatalf("client frame decoded as %+v, %v", h, err)
	}
	if bytes.Equal(c1, c2) {
		t.Error("two client frames have the same mask")
	}
	p := c1[HeaderLen(c1):]
	ws.Cipher(p, h.Mask, 0)
	if string(p) != "abc" {
		t.Errorf("payload unmasked to %q", p)
	}
}

func TestDecodeHeaderRefuses(t *testing.T) {
	mask := [4]byte{9, 9, 9, 9}
	frame := func(h ws.Header) []byte { return AppendHeader(nil, h) }
	for _, c := range []struct {
		name  string
		b     []byte
		s     ws.State
		limit int64
		want  error
	}{
		{"one byte", []byte{0x81}, 0, 10, ErrIncomplete},
		{"extended length cut", []byte{0x81, 126, 0}, 0, 10, ErrIncomplete},
		{"mask cut", []byte{0x81, 0x80 | 5, 1, 2, 3}, 0, 10, ErrIncomplete},
		{"length with the top bit", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 0, 10, ws.ErrHeaderLengthMSB},
		{"unmasked to a server", frame(ws.Header{Fin: true, OpCode: ws.OpText}), ws.StateServerSide, 10, ws.ErrProtocolMaskRequired},
		{"masked to a client", frame(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true}), ws.StateClientSide, 10, ws.ErrProtocolMaskUnexpected},
		{"rsv", frame(ws.Header{Fin: true, Rsv: 1, OpCode: ws.OpText, Masked: true}), ws.StateServerSide, 10, ws.ErrProtocolNonZeroRsv},
		{"reserved opcode", frame(ws.Header{Fin: true, OpCode: 0x0b, Masked: true}), ws.StateServerSide, 10, ws.ErrProtocolOpCodeReserved},
		{"fragmented ping", frame(ws.Header{OpCode: ws.OpPing, Masked: true}), ws.StateServerSide, 10, ws.ErrProtocolControlNotFinal},
		{"long ping", frame(ws.Header{Fin: true, OpCode: ws.OpPing, Length: 126, Masked: true}), ws.StateServerSide, 1000, ws.ErrProtocolControlPayloadOverflow},
		{"text inside a message", frame(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true}), ws.StateServerSide | ws.StateFragmented, 10, ws.ErrProtocolContinuationExpected},
		{"continuation outside one", frame(ws.Header{Fin: true, OpCode: ws.OpContinuation, Masked: true}), ws.StateServerSide, 10, ws.ErrProtocolContinuationUnexpected},
		{"over the limit", frame(ws.Header{Fin: true, OpCode: ws.OpText, Length: 11, Masked: true, Mask: mask}), ws.StateServerSide, 10, ErrTooLarge},
		{"64-bit over the limit", frame(ws.Header{OpCode: ws.OpBinary, Length: 1 << 40}), ws.StateClientSide, 1 << 20, ErrTooLarge},
	} {
		_, err := DecodeHeader(c.b, c.s, c.limit)
		if !errors.Is(err, c.want) || c.want != ErrIncomplete && c.want != ErrTooLarge && !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A ping within the RFC's 125 bytes passes whatever the data limit.
	if _, err := DecodeHeader(frame(ws.Header{Fin: true, OpCode: ws.OpPing, Length: 125, Masked: true}), ws.StateServerSide, 0); err != nil {
		t.Errorf("125-byte ping with a 0 limit: %v", err)
	}
}

func TestReadHeader(t *testing.T) {
	var buf [ws.MaxHeaderSize]byte
	b := AppendFrame(nil, ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}}, make([]byte, 300))
	h, err := ReadHeader(bytes.NewReader(b), &buf, ws.StateServerSide, 300)
	if err != nil || h.Length != 300 || h.Mask != [4]byte{1, 2, 3, 4} {
		t.Fatalf("ReadHeader = %+v, %v", h, err)
	}
	if _, err := ReadHeader(bytes.NewReader(nil), &buf, 0, 10); err != io.EOF {
		t.Errorf("nothing to read: %v, want io.EOF", err)
	}
	if _, err := ReadHeader(bytes.NewReader(b[:5]), &buf, 0, 1000); err != io.ErrUnexpectedEOF {
		t.Errorf("cut header: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestNoAllocations: the server appends headers and decodes them on its
// hot paths.
func TestNoAllocations(t *testing.T) {
	buf := make([]byte, 0, 64)
	hdr := AppendClientFrame(nil, ws.OpText, []byte("hello"))
	var sink int64
	n := testing.AllocsPerRun(100, func() {
		buf = AppendServerHeader(buf[:0], ws.OpText, 70000)
		buf = AppendClientFrame(buf, ws.OpText, []byte("hello"))
		h, _ := DecodeHeader(hdr, ws.StateServerSide, 100)
		sink += h.Length
	})
	if n != 0 {
		t.Errorf("%v allocations per frame", n)
	}
}

func BenchmarkAppendServerHeader(b *testing.B) {
	buf := make([]byte, 0, 64)
	for i := 0; b.Loop(); i++ {
		buf = AppendServerHeader(buf[:0], ws.OpText, i&0x3ff)
	}
}

func BenchmarkDecodeHeader(b *testing.B) {
	hdr := AppendHeader(nil, ClientHeader(ws.OpText, 300))
	for b.Loop() {
		if _, err := DecodeHeader(hdr, ws.StateServerSide, 1024); err != nil {
			b.Fatal(err)
		}
	}
}
