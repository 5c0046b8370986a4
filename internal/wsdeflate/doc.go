// Package wsdeflate is permessage-deflate (RFC 7692) for the server's
// WebSockets: the negotiation of the upgrade, the compression of a text
// message into a whole frame, and the bounded inflation of a client's
// compressed message.
//
// The server negotiates no context takeover in both directions: every
// message is compressed on its own, so that one compressed frame can be
// queued to every subscriber of a broadcast (the hub compresses an event
// once per format, not once per connection), and a client's message is
// inflated without a window kept per connection.
//
// DEFLATE itself is github.com/klauspost/compress/flate; this package only
// frames it.
package wsdeflate
