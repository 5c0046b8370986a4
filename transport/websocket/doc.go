// Package websocket serves redcast over WebSocket: the full JSON protocol and
// plain mode. It upgrades HTTP requests with github.com/gobwas/ws, runs one
// read loop (in the handler's goroutine) and one writer goroutine per
// connection, and implements redcast.Transport with a send queue bounded in
// messages and bytes. The writer drains everything queued into as few
// frames and one socket write: the full protocol joins queued messages with
// '\n' into one frame; plain mode writes one frame per message but flushes
// them together.
package websocket
