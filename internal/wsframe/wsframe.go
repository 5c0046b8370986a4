package wsframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gobwas/ws"
)

// ErrTooLarge is returned for a data frame whose payload is longer than
// the reader's limit.
var ErrTooLarge = errors.New("wsframe: frame payload over the limit")

// ErrProtocol is wrapped around the gobwas/ws error that says how a header
// breaks RFC 6455.
var ErrProtocol = errors.New("wsframe: protocol violation")

// ErrIncomplete is returned by DecodeHeader when b holds less than a whole
// header.
var ErrIncomplete = errors.New("wsframe: incomplete frame header")

// Bits of the first two header bytes.
const (
	finBit  = 0x80
	maskBit = 0x80
	// len16 and len64 are the 7-bit lengths that announce a 16-bit and a
	// 64-bit extended length.
	len16 = 126
	len64 = 127
)

// AppendHeader appends the encoding of h to dst. Only the three bits of
// h.Rsv and the four of h.OpCode that the header has room for are encoded;
// a negative h.Length is encoded as 0.
func AppendHeader(dst []byte, h ws.Header) []byte {
	b0 := (h.Rsv&0x07)<<4 | byte(h.OpCode)&0x0f
	if h.Fin {
		b0 |= finBit
	}
	var b1 byte
	if h.Masked {
		b1 = maskBit
	}
	n := max(h.Length, 0)
	switch {
	case n < len16:
		dst = append(dst, b0, b1|byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, b0, b1|len16, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, b0, b1|len64), uint64(n))
	}
	if h.Masked {
		dst = append(dst, h.Mask[:]...)
	}
	return dst
}

// AppendFrame appends a frame with header h and payload p to dst; the
// header's length is len(p), and the payload is masked with h.Mask when
// h.Masked.
func AppendFrame(dst []byte, h ws.Header, p []byte) []byte {
	h.Length = int64(len(p))
	dst = AppendHeader(dst, h)
	start := len(dst)
	dst = append(dst, p...)
	if h.Masked {
		ws.Cipher(dst[start:], h.Mask, 0)
	}
	return dst
}

// AppendServerHeader appends the header of a final, unmasked frame, as a
// server sends, with opcode op and an n-byte payload that the caller
// appends next. It is AppendHeader for the server's write path, small
// enough to be inlined there.
func AppendServerHeader(dst []byte, op ws.OpCode, n int) []byte {
	b0 := finBit | byte(op)
	switch {
	case n < len16:
		return append(dst, b0, byte(n))
	case n <= math.MaxUint16:
		return append(dst, b0, len16, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, b0, len64), uint64(n))
}

// ClientHeader returns the header of a final frame, as a client sends:
// with opcode op, an n-byte payload and a fresh random mask.
func ClientHeader(op ws.OpCode, n int) ws.Header {
	return ws.Header{Fin: true, OpCode: op, Masked: true, Mask: ws.NewMask(), Length: int64(n)}
}

// AppendClientFrame appends a final frame with opcode op and payload p,
// masked with a fresh random key as a client sends it.
func AppendClientFrame(dst []byte, op ws.OpCode, p []byte) []byte {
	return AppendFrame(dst, ClientHeader(op, 0), p)
}

// HeaderLen returns the size of the frame header that starts b, from its
// first two bytes: 2 to ws.MaxHeaderSize bytes. b must hold two bytes.
func HeaderLen(b []byte) int {
	n := 2
	switch b[1] &^ maskBit {
	case len16:
		n += 2
	case len64:
		n += 8
	}
	if b[1]&maskBit != 0 {
		n += 4
	}
	return n
}

// DecodeHeader decodes the frame header at the start of b and checks it
// with ws.CheckHeader for a reader in state s: ws.StateServerSide refuses
// unmasked frames, ws.StateClientSide masked ones, and ws.StateFragmented
// says a message is under way, so that only a continuation (or a control
// frame) may come. A data frame whose payload is longer than limit is
// refused with ErrTooLarge; control frames are held to the RFC's 125 bytes
// whatever the limit. Any other refusal wraps ErrProtocol and the gobwas/ws
// error that names the rule broken.
func DecodeHeader(b []byte, s ws.State, limit int64) (ws.Header, error) {
	if len(b) < 2 || len(b) < HeaderLen(b) {
		return ws.Header{}, ErrIncomplete
	}
	h := ws.Header{
		Fin:    b[0]&finBit != 0,
		Rsv:    b[0] >> 4 & 0x07,
		OpCode: ws.OpCode(b[0] & 0x0f),
		Masked: b[1]&maskBit != 0,
	}
	rest := b[2:]
	switch n := b[1] &^ maskBit; n {
	case len16:
		h.Length = int64(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
	case len64:
		n := binary.BigEndian.Uint64(rest)
		if n > math.MaxInt64 {
			return h, fmt.Errorf("%w: %w", ErrProtocol, ws.ErrHeaderLengthMSB)
		}
		h.Length = int64(n)
		rest = rest[8:]
	default:
		h.Length = int64(n)
	}
	if h.Masked {
		copy(h.Mask[:], rest)
	}
	if err := ws.CheckHeader(h, s); err != nil {
		return h, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if h.Length > limit && !h.OpCode.IsControl() {
		return h, ErrTooLarge
	}
	return h, nil
}

// ReadHeader reads a frame header from r into buf and decodes it as
// DecodeHeader does. A header cut short by the end of r is
// io.ErrUnexpectedEOF; io.EOF means r ended between frames.
func ReadHeader(r io.Reader, buf *[ws.MaxHeaderSize]byte, s ws.State, limit int64) (ws.Header, error) {
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return ws.Header{}, err
	}
	n := HeaderLen(buf[:2])
	if _, err := io.ReadFull(r, buf[2:n]); err != nil {
		return ws.Header{}, NoEOF(err)
	}
	return DecodeHeader(buf[:n], s, limit)
}

// NoEOF turns io.EOF, the end of a reader part way through a frame, into
// io.ErrUnexpectedEOF.
func NoEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
