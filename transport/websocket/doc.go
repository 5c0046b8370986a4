// Package websocket serves redcast over WebSocket: the full JSON protocol and
// plain mode. It upgrades HTTP requests with github.com/gobwas/ws and returns
// from the HTTP handler at once, so that net/http keeps nothing of the
// connection; a read loop then serves it, and it implements
// redcast.Transport with a send queue bounded in messages and bytes. A
// writer goroutine runs only while there is something to write; it drains
// everything queued into as few frames and one socket write (the full
// protocol joins queued messages with '\n' into one frame; plain mode writes
// one frame per message but flushes them together), and while messages keep
// coming it writes at most once per flush window. A quiet connection (no
// writer at work, the flush window over) is written directly instead, by
// the goroutine that delivers a broadcast of few subscribers or by the read
// loop with its replies, with one write that never waits; what the socket
// does not take is left to the writer. Read buffers are pooled and held
// only while the peer's data is being read.
//
// An idle connection holds no goroutine on Linux: its read loop parks the
// socket in an epoll instance, which one goroutine per Handler waits on,
// and a fresh read loop starts when the peer sends (a client that sends
// often keeps its read loop for a moment first). The connection's ping
// timer enforces the read deadline meanwhile. Over TLS, and on other
// systems, an idle connection waits on a goroutine of its own, with as
// small a stack as it can. Handler.Close stops the Handler's goroutine.
package websocket
