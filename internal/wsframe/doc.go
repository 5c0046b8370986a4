// Package wsframe is the one WebSocket frame codec (RFC 6455) of redcast:
// the server's transport, the Go client, the load generator and the tests
// all encode and decode frames with it.
//
// Encoding appends to a byte slice, so that a caller that reuses its buffer
// allocates nothing: [AppendServerHeader] for the server's unmasked frames,
// whose payload the caller appends itself, [AppendClientFrame] for a
// client's masked frames, and [AppendFrame] for any header at all (tests
// write fragmented, reserved or unmasked frames with it). Decoding reads a
// header from bytes already in hand, [DecodeHeader], or from a reader,
// [ReadHeader]; both check the header against the RFC for the side that
// reads it and refuse a data frame longer than the caller's limit before
// anything of its payload is read.
//
// The header type, opcodes, masking and the RFC checks are those of
// github.com/gobwas/ws. What this package adds is what gobwas does not
// offer: it encodes headers only into an io.Writer and decodes them only
// from an io.Reader, interfaces a byte slice would have to be wrapped in,
// which costs the server's write path an allocation per frame.
package wsframe
