// Package sse serves redcast over Server-Sent Events, for browsers and
// networks where WebSocket is blocked: GET /connection/sse?channel=NAME
// (repeatable) is a subscribe-only stream of the pushes the full protocol
// sends (publication, join, leave, refresh, disconnect), each a JSON line
// in an event's data, plus the stream's own connect and subscribe events.
// Clients publish through the HTTP API. docs/protocol.md is the reference.
//
// Every event carries an id naming the position of every recoverable
// channel of the stream (see the format in id.go), so that the browser's
// EventSource, which resends only the last id it saw as Last-Event-ID,
// recovers every channel on reconnect; a subscribe event per channel says
// whether it did.
//
// A Handler checks the request (origin, token, channels, permissions)
// before it subscribes anything, so refusals are plain HTTP errors. Each
// stream is the outbox.Sink of its client's outbox (package outbox owns the
// queue, its bounds and the slow-consumer decision): the stream reads the
// position of each publication from the front of its line, frames the
// events and writes what the outbox hands it with one write and one flush,
// with a write deadline; its own connect and subscribe events are queued in
// order with the client's pushes, each as a message that carries all its
// event needs (own.go). Writes wait until the handler wrote the
// response's header, and the handler's goroutine, which owns the response,
// returns only once the outbox ended. A stream gets a ": ping" comment
// every ping interval. A full queue ends the stream as a slow consumer
// (3002); Node.Shutdown or Handler.Drain end it with a final disconnect
// event (3001) advising to reconnect.
package sse
