// Package websocket serves redcast over WebSocket: the full JSON protocol and
// plain mode. It upgrades HTTP requests with github.com/gobwas/ws and returns
// from the HTTP handler at once, so that net/http keeps nothing of the
// connection; a read loop then serves it. A connection (conn) is the
// outbox.Sink of its client's outbox: it turns queued messages into text
// frames (the full protocol joins them with '\n' into as few frames as it
// can; plain mode writes a frame per message), writes them with a write
// deadline, and, having a file descriptor, also writes without waiting
// (outbox.TryWriter) for the outbox's direct writes. The queue, its bounds,
// coalescing, the flush window and the slow-consumer decision belong to
// package outbox. The read loop holds the outbox while its client handles
// the frames it has at hand (Client.HandleFrame) and lets it go with
// Client.Flush, so that their replies go out together. Read buffers are
// pooled and held only while the peer's data is being read.
//
// An idle connection holds no goroutine on Linux: its read loop parks the
// socket in an epoll instance, which one goroutine per Handler waits on,
// and a fresh read loop starts when the peer sends (a client that sends
// often keeps its read loop for a moment first). The connection's ping
// timer enforces the read deadline meanwhile. Over TLS, and on other
// systems, an idle connection waits on a goroutine of its own, with as
// small a stack as it can. Handler.Close stops the Handler's goroutine.
package websocket
