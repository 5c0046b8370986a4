// Package client is a Go client for redcast's full WebSocket protocol
// (docs/protocol.md): connect, subscribe with history and recovery, publish,
// history, presence and ping, with pushes delivered to a callback.
//
// A Client is one connection. Dial opens it and returns once the server has
// answered connect:
//
//	c, err := client.Dial(ctx, "ws://localhost:8080/connection/websocket", client.Options{
//		Name:   "alice",
//		OnPush: func(p *protocol.Push) { ... },
//	})
//	...
//	defer c.Close()
//	res, err := c.Subscribe(ctx, "chat:general", client.SubscribeOptions{History: 10})
//	pos, err := c.Publish(ctx, "chat:general", map[string]string{"text": "hi"})
//
// # Concurrency
//
// All methods are safe for concurrent use. Each Client runs exactly two
// goroutines, a reader and a writer, so that a process can hold thousands of
// clients. Commands issued concurrently are coalesced by the writer into as
// few frames as fit in Options.MaxFrameSize; replies are matched to their
// commands by id, so concurrent calls do not wait for each other.
//
// Every blocking method takes a context; cancelling it returns ctx.Err() from
// the call (the command may still have reached the server; its reply is then
// dropped).
//
// # Pushes and disconnects
//
// Options.OnPush is called from the reader goroutine, in the order the server
// sent the pushes, and before the reply of any command sent after them is
// delivered. It must not block for long: while it runs no reply or push of
// that connection is read. It must not wait for the reply of a call made on
// the same Client, which would deadlock.
//
// When the connection ends — the server sent a disconnect push or a close
// frame, the network failed, or Close was called — every pending and later
// call fails with the reason, Done is closed and Err returns the reason. A
// disconnect decided by the server is reported as an error wrapping the
// protocol.Disconnect, so
//
//	var d protocol.Disconnect
//	if errors.As(c.Err(), &d) && d.Reconnect() { ... }
//
// tells whether to reconnect. Errors answered by the server are returned as
// *protocol.Error and match the sentinels of package protocol with errors.Is.
//
// # Reconnecting
//
// A Client does not reconnect by itself. To resume after a reconnect, keep for
// each channel the position of the last publication handled (the subscribe
// result's Offset and Epoch, then each publication's Offset) and subscribe
// again with SubscribeOptions.Since on a new Client.
package client
