package websocket

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wsdeflate"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// byteConn is a net.Conn that reads from a fixed input and discards writes.
type byteConn struct {
	net.Conn
	r     *bytes.Reader
	reads int
}

func (c *byteConn) Read(p []byte) (int, error)       { c.reads++; return c.r.Read(p) }
func (c *byteConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *byteConn) SetReadDeadline(time.Time) error  { return nil }
func (c *byteConn) SetWriteDeadline(time.Time) error { return nil }
func (c *byteConn) Close() error                     { return nil }

func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	var buf bytes.Buffer
	f := ws.NewFrame(op, fin, payload)
	f = ws.MaskFrameInPlace(f)
	if err := ws.WriteFrame(&buf, f); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// FuzzReader feeds arbitrary bytes to the frame reader as if a client sent
// them. It must never panic, never return a message larger than the limit
// or with invalid UTF-8, and stop at the first violation; when it says the
// next frame is buffered whole, reading it must not read the socket.
func FuzzReader(f *testing.F) {
	f.Add(clientFrame(ws.OpText, true, []byte(`{"id":1,"method":"ping"}`)))
	f.Add(append(clientFrame(ws.OpText, false, []byte("he")), clientFrame(ws.OpContinuation, true, []byte("llo"))...))
	f.Add(append(clientFrame(ws.OpPing, true, []byte("p")), clientFrame(ws.OpText, true, []byte("x"))...))
	f.Add(append(clientFrame(ws.OpText, true, []byte("a")), clientFrame(ws.OpText, true, bytes.Repeat([]byte("b"), 200))...))
	f.Add(clientFrame(ws.OpBinary, true, []byte{0xff}))
	f.Add(clientFrame(ws.OpText, true, bytes.Repeat([]byte("a"), 300)))
	f.Add(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzReader(t, data, nil) })
}

// FuzzReaderDeflate is FuzzReader on a connection that negotiated
// permessage-deflate: compressed messages (RSV1 on their first frame) are
// inflated, within the same limit.
func FuzzReaderDeflate(f *testing.F) {
	var comp wsdeflate.Compressor
	compressed := func(fin bool, msg []byte) []byte {
		b := clientFrame(ws.OpText, fin, comp.Compress(nil, msg))
		b[0] |= 0x40 // RSV1
		return b
	}
	f.Add(compressed(true, []byte(`{"id":1,"method":"ping"}`)))
	f.Add(compressed(true, bytes.Repeat([]byte("a"), 5000)))
	f.Add(append(compressed(false, []byte("hello")), clientFrame(ws.OpContinuation, true, nil)...))
	f.Add(append(compressed(true, []byte("x")), clientFrame(ws.OpText, true, []byte("plain"))...))
	f.Add(clientFrame(ws.OpText, true, []byte("plain")))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzReader(t, data, &comp) })
}

// fuzzReader reads data as a client's frames, with compression when comp
// is set, and checks what FuzzReader promises.
func fuzzReader(t *testing.T, data []byte, comp *wsdeflate.Compressor) {
	const maxSize = 256
	bc := &byteConn{r: bytes.NewReader(data)}
	c := newConn(bc, hub.FormatProtocol, limits{}, outbox.Options{MaxMessages: 4, MaxBytes: 1024})
	c.deflate = comp
	r := newReader(c, nil)
	r.maxSize, r.idle = maxSize, time.Second
	r.tooLarge, r.binary = protocol.DisconnectFrameTooLarge, protocol.DisconnectBadFrame
	buffered := false
	for {
		reads := bc.reads
		msg, err := r.next()
		if buffered && bc.reads != reads {
			t.Fatal("a frame said to be buffered was read from the socket")
		}
		if errors.Is(err, errDrained) {
			buffered = false
			continue
		}
		if err != nil {
			return
		}
		buffered = r.frameBuffered()
		if len(msg) > maxSize {
			t.Fatalf("message of %d bytes passed a %d-byte limit", len(msg), maxSize)
		}
		if !utf8.Valid(msg) {
			t.Fatalf("invalid UTF-8 passed: %q", msg)
		}
		if c.out.Closing() {
			t.Fatal("a message was returned after the connection started closing")
		}
	}
}
