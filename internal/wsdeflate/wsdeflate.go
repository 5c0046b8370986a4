package wsdeflate

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"

	"github.com/redcast/redcast/internal/wsframe"
)

// Defaults of Compressor.
const (
	// DefaultLevel is the compression level when none is set: the
	// fastest, which gets most of the gain on JSON for the least CPU.
	DefaultLevel = 1
	// DefaultMinSize is the size under which messages go uncompressed
	// when none is set: below it the frame saved is not worth the CPU.
	DefaultMinSize = 256
)

// ErrTooLarge is returned by Inflate for a message that inflates to more
// than its limit.
var ErrTooLarge = errors.New("wsdeflate: inflated message over the limit")

// ErrCorrupt is returned by Inflate for a payload that is not DEFLATE data.
var ErrCorrupt = errors.New("wsdeflate: corrupt compressed message")

// frame header bytes of a final text frame, compressed (RSV1) or not. Both
// are bytes no UTF-8 text starts with (0xC1 is never valid UTF-8, 0x81 is a
// continuation byte), which is how IsFrame tells a frame from a message.
const (
	textCompressed = 0x80 | 0x40 | byte(ws.OpText)
	textPlain      = 0x80 | byte(ws.OpText)
)

// tail is what a sync flush ends with and a compressed message leaves out
// (RFC 7692, 7.2.1), and what the inflater appends back.
var tail = []byte{0x00, 0x00, 0xff, 0xff}

// Compressor compresses text messages into whole frames. The zero value
// is usable: DefaultLevel and DefaultMinSize. It is safe for concurrent
// use; its settings must not change once it is in use.
type Compressor struct {
	// Level is the flate level, 1 (fastest) to 9 (smallest); 0 means
	// DefaultLevel. Out-of-range values are clamped.
	Level int
	// MinSize is the length under which a message is not compressed; 0
	// means DefaultMinSize, negative compresses every message.
	MinSize int

	once    sync.Once
	level   int
	writers sync.Pool // *writer
}

type writer struct {
	fw  *flate.Writer
	buf bytes.Buffer
}

// Threshold returns the length from which Frame compresses a message.
func (c *Compressor) Threshold() int {
	switch {
	case c.MinSize == 0:
		return DefaultMinSize
	case c.MinSize < 0:
		return 0
	}
	return c.MinSize
}

func (c *Compressor) init() {
	c.level = c.Level
	if c.level == 0 {
		c.level = DefaultLevel
	}
	c.level = min(max(c.level, flate.BestSpeed), flate.BestCompression)
}

// Compress appends to dst msg compressed as the payload of a
// permessage-deflate message: DEFLATE blocks without the final empty one's
// tail. It compresses whatever msg's length.
func (c *Compressor) Compress(dst, msg []byte) []byte {
	c.once.Do(c.init)
	w, _ := c.writers.Get().(*writer)
	if w == nil {
		w = &writer{}
		w.fw, _ = flate.NewWriter(&w.buf, c.level) // the level is in range: cannot fail
	}
	w.buf.Reset()
	w.fw.Reset(&w.buf)
	_, _ = w.fw.Write(msg) // writes to a bytes.Buffer: cannot fail
	_ = w.fw.Flush()
	out := w.buf.Bytes()
	out = out[:len(out)-len(tail)] // a sync flush ends with tail
	dst = append(dst, out...)
	if w.buf.Cap() <= maxPooled {
		c.writers.Put(w)
	}
	return dst
}

// maxPooled is the largest buffer a pooled writer keeps.
const maxPooled = 256 << 10

// Frame appends to dst the whole frame of the text message msg: compressed
// (RSV1 set) when msg is at least the threshold long and compression makes
// it smaller, as is otherwise. IsFrame tells such a frame from a message.
func (c *Compressor) Frame(dst, msg []byte) []byte {
	if len(msg) >= c.Threshold() {
		start := len(dst)
		// Room for the longest header, then the payload; the header is
		// written in front once the payload's length is known.
		dst = append(dst, make([]byte, ws.MaxHeaderSize-4)...)
		dst = c.Compress(dst, msg)
		n := len(dst) - start - (ws.MaxHeaderSize - 4)
		if n < len(msg) {
			var h [ws.MaxHeaderSize]byte
			hdr := wsframe.AppendServerHeader(h[:0], ws.OpText, n)
			hdr[0] |= 0x40 // RSV1: compressed
			off := start + ws.MaxHeaderSize - 4 - len(hdr)
			copy(dst[off:], hdr)
			return append(dst[:start], dst[off:]...)
		}
		dst = dst[:start]
	}
	dst = wsframe.AppendServerHeader(dst, ws.OpText, len(msg))
	return append(dst, msg...)
}

// IsFrame reports whether a queued message is a whole frame made by Frame
// rather than the text of a message: its first byte is a frame header's,
// which starts no UTF-8 text.
func IsFrame(msg []byte) bool {
	return len(msg) > 0 && (msg[0] == textCompressed || msg[0] == textPlain)
}

// inflaters pools what Inflate uses.
var inflaters sync.Pool // *inflater

// inflater is a flate reader and its input: the payload and the tail in
// one buffer, read through a bytes.Reader, which is an io.ByteReader, so
// that the flate reader reads it as it is rather than through a bufio.Reader
// of its own.
type inflater struct {
	fr  io.ReadCloser // a flate.Resetter
	in  []byte
	src bytes.Reader
}

// Inflate appends to dst the message that payload, a compressed
// message's payload (its frames joined), inflates to, and returns
// ErrTooLarge as soon as it would exceed limit bytes, or ErrCorrupt.
func Inflate(dst, payload []byte, limit int) ([]byte, error) {
	inf, _ := inflaters.Get().(*inflater)
	if inf == nil {
		inf = &inflater{}
	}
	defer func() {
		if cap(inf.in) > maxPooled {
			inf.in = nil
		}
		inflaters.Put(inf)
	}()
	inf.in = append(append(inf.in[:0], payload...), tail...)
	inf.src.Reset(inf.in)
	if inf.fr == nil {
		inf.fr = flate.NewReader(&inf.src)
	} else if err := inf.fr.(flate.Resetter).Reset(&inf.src, nil); err != nil {
		return dst, ErrCorrupt
	}
	fr := inf.fr
	start := len(dst)
	var err error
	for {
		if cap(dst)-len(dst) < 512 {
			dst = slices.Grow(dst, max(512, len(dst)-start))
		}
		room := dst[len(dst):cap(dst)]
		// One byte past the limit is read to tell that it is over.
		if left := limit + 1 - (len(dst) - start); len(room) > left {
			room = room[:left]
		}
		var n int
		n, err = fr.Read(room)
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			err = ErrTooLarge
			break
		}
		if err != nil {
			break
		}
	}
	switch {
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		// The tail ends a sync flush, not the stream: the reader runs out
		// of input after it, which is the end of the message.
		err = nil
	case errors.Is(err, ErrTooLarge):
	default:
		err = ErrCorrupt
	}
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// accepted is the answer to an accepted offer: no context takeover in
// either direction.
var accepted = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// Negotiation negotiates permessage-deflate during one upgrade: use its
// Negotiate as ws.HTTPUpgrader.Negotiate, then Accepted. The zero value
// is ready; it is for one upgrade only.
type Negotiation struct {
	accepted bool
}

// Negotiate accepts the first permessage-deflate offer whose parameters
// allow what the server does, answering with no context takeover both
// ways. An offer that limits the server's window (server_max_window_bits
// under 15) is declined: the compressor uses a full window.
func (n *Negotiation) Negotiate(opt httphead.Option) (httphead.Option, error) {
	if n.accepted || !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, nil
	}
	var p wsflate.Parameters
	if err := p.Parse(opt); err != nil {
		return httphead.Option{}, nil // a malformed offer is declined, not fatal
	}
	if p.ServerMaxWindowBits != 0 && p.ServerMaxWindowBits < 15 {
		return httphead.Option{}, nil
	}
	n.accepted = true
	return accepted.Option(), nil
}

// Accepted reports whether an offer was accepted.
func (n *Negotiation) Accepted() bool { return n.accepted }
