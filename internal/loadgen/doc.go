// Package loadgen is redcast's load generator: it drives a server over raw
// WebSocket connections and measures fan-out throughput, end-to-end latency,
// loss and the server's memory and CPU per connection and per delivery.
//
// It is built to cost little, so that the server and not the load generator
// is what a run measures: connections speak the wire protocol directly
// (github.com/gobwas/ws, not package client), every subscriber has one
// reader goroutine with a small buffer, and a subscriber decodes only what it
// needs from a publication — its offset and the stamp at the start of the
// text — without a JSON decoder. Run reports the load generator's own CPU
// time and says when it was saturated.
//
// # Stamps
//
// Every publication's data is {"text": STAMP PADDING}, where STAMP is
//
//	FLAG UNIXNANO "." PUBLISHER "." SEQUENCE "."
//
// FLAG is 'm' for publications sent while measuring and 'w' for those sent
// during the probe and the warm-up; UNIXNANO is the publisher's clock when
// it wrote the publication; SEQUENCE counts the publisher's publications per
// channel from 1. Full-protocol subscribers and plain-mode subscribers (who
// receive only the text) read the same stamp, compute latency against their
// own clock (the same machine), and detect duplicates per channel: by offset
// in the full protocol, by sequence in plain mode.
//
// # Scenarios
//
//   - Fanout: Subscribers spread round-robin over Channels, Publishers
//     publishing at Rate (or as fast as the in-flight window allows). After
//     every subscriber has received a first publication and the warm-up, it
//     measures for Duration and then waits for the stragglers.
//   - Idle: Subscribers connect, subscribe and stay idle for Duration; the
//     report gives the server's RSS per connection.
//   - Storm: Subscribers connect and subscribe all at once; the report gives
//     the time until all are subscribed and until all receive.
//
// Run is not safe to call concurrently against one server if both runs use
// the same channels.
package loadgen
