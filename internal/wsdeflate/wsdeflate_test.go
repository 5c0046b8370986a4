package wsdeflate

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsframe"
)

// stdInflate inflates a permessage-deflate payload with the standard
// library, an implementation independent of the one the package uses.
func stdInflate(t *testing.T, payload []byte) []byte {
	t.Helper()
	r := stdflate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(tail)))
	out, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// stdDeflate compresses msg as a client would, with the standard library.
func stdDeflate(t *testing.T, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := stdflate.NewWriter(&buf, stdflate.DefaultCompression)
	_, _ = w.Write(msg)
	_ = w.Flush()
	b := buf.Bytes()
	if !bytes.HasSuffix(b, tail) {
		t.Fatalf("sync flush without its tail: % x", b[len(b)-4:])
	}
	return b[:len(b)-4]
}

func decodeFrame(t *testing.T, f []byte) (ws.Header, []byte) {
	t.Helper()
	h, err := wsframe.DecodeHeader(f, ws.StateClientSide|ws.StateExtended, 1<<30)
	if err != nil {
		t.Fatalf("decode header: %v", err)
	}
	p := f[wsframe.HeaderLen(f):]
	if int64(len(p)) != h.Length {
		t.Fatalf("payload %d bytes, header says %d", len(p), h.Length)
	}
	return h, p
}

func TestFrame(t *testing.T) {
	var c Compressor
	json := []byte(`{"push":"publication","channel":"scores","pub":{"offset":7,"data":` + strings.Repeat(`{"team":"blue","score":12},`, 40) + `1}}`)
	for _, tc := range []struct {
		name       string
		msg        []byte
		compressed bool
	}{
		{"short", []byte(`{"push":"join"}`), false},
		{"long", json, true},
		{"incompressible", randomText(4096), false},
		{"over 64 KiB", bytes.Repeat(json, 100), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := c.Frame([]byte("prefix"), tc.msg)
			if string(f[:6]) != "prefix" {
				t.Fatal("dst's bytes changed")
			}
			f = f[6:]
			if !IsFrame(f) {
				t.Fatalf("IsFrame false for a frame starting % x", f[0])
			}
			h, p := decodeFrame(t, f)
			if !h.Fin || h.OpCode != ws.OpText {
				t.Fatalf("header %+v", h)
			}
			if got := h.Rsv&0x4 != 0; got != tc.compressed {
				t.Fatalf("compressed %v, want %v", got, tc.compressed)
			}
			if tc.compressed {
				if len(p) >= len(tc.msg) {
					t.Fatalf("compressed %d bytes into %d", len(tc.msg), len(p))
				}
				p = stdInflate(t, p)
			}
			if !bytes.Equal(p, tc.msg) {
				t.Fatalf("payload differs from the message")
			}
		})
	}
}

// randomText returns n bytes of printable text that does not compress.
func randomText(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(33 + x%94)
	}
	return b
}

func TestThresholdAndLevel(t *testing.T) {
	msg := bytes.Repeat([]byte("abcd"), 100)
	if f := (&Compressor{MinSize: 1000}).Frame(nil, msg); f[0] != textPlain {
		t.Fatal("a message under MinSize was compressed")
	}
	if f := (&Compressor{MinSize: -1}).Frame(nil, []byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); f[0] != textCompressed {
		t.Fatal("negative MinSize did not compress a short message")
	}
	for _, level := range []int{-5, 1, 5, 9, 42} {
		c := &Compressor{Level: level}
		_, p := decodeFrame(t, c.Frame(nil, msg))
		if got := stdInflate(t, p); !bytes.Equal(got, msg) {
			t.Fatalf("level %d: round trip differs", level)
		}
	}
}

func TestIsFrameNeverText(t *testing.T) {
	for _, s := range []string{`{"a":1}`, "hello", "é", "日本", "\x00", ""} {
		if IsFrame([]byte(s)) {
			t.Fatalf("IsFrame(%q) true", s)
		}
	}
}

func TestInflate(t *testing.T) {
	msg := bytes.Repeat([]byte(`{"method":"publish","params":{"channel":"x","data":1}}`), 50)
	payload := stdDeflate(t, msg)
	got, err := Inflate([]byte("x"), payload, len(msg))
	if err != nil || !bytes.Equal(got, append([]byte("x"), msg...)) {
		t.Fatalf("Inflate: %v", err)
	}
	if _, err := Inflate(nil, payload, len(msg)-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit by one: %v, want ErrTooLarge", err)
	}
	// A bomb: 64 MiB of zeros in a few KiB.
	bomb := stdDeflate(t, make([]byte, 64<<20))
	if _, err := Inflate(nil, bomb, 64<<10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v, want ErrTooLarge", err)
	}
	if _, err := Inflate(nil, []byte{0xff, 0xff, 0xff}, 1024); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: %v, want ErrCorrupt", err)
	}
	// The server's own output inflates too.
	var c Compressor
	got, err = Inflate(nil, c.Compress(nil, msg), len(msg))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Inflate(Compress): %v", err)
	}
	empty, err := Inflate(nil, c.Compress(nil, nil), 10)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty message: %q, %v", empty, err)
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		offer string
		ok    bool
	}{
		{"permessage-deflate", true},
		{"permessage-deflate; client_max_window_bits", true},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", true},
		{"permessage-deflate; server_max_window_bits=10", false},
		{"permessage-deflate; server_max_window_bits=10, permessage-deflate", true},
		{"permessage-deflate; server_max_window_bits=99", false},
		{"x-webkit-deflate-frame", false},
	} {
		var n Negotiation
		var answers []string
		httphead.ScanOptions([]byte(tc.offer), func(i int, name, attr, val []byte) httphead.Control {
			return httphead.ControlContinue
		})
		opts, _ := httphead.ParseOptions([]byte(tc.offer), nil)
		for _, o := range opts {
			a, err := n.Negotiate(o)
			if err != nil {
				t.Fatalf("%q: %v", tc.offer, err)
			}
			if a.Size() > 0 {
				answers = append(answers, a.String())
			}
		}
		if n.Accepted() != tc.ok || len(answers) != map[bool]int{true: 1}[tc.ok] {
			t.Fatalf("%q: accepted %v answers %q, want %v", tc.offer, n.Accepted(), answers, tc.ok)
		}
		if tc.ok && !strings.Contains(answers[0], "server_no_context_takeover") || tc.ok && !strings.Contains(answers[0], "client_no_context_takeover") {
			t.Fatalf("%q: answer %q lacks no context takeover", tc.offer, answers[0])
		}
	}
}
