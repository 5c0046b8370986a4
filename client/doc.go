// Package client is a Go client for redcast's full WebSocket protocol
// (docs/protocol.md): connect, subscribe with history and recovery, publish,
// history, presence and ping. A Client is one connection with pushes
// delivered to a callback; a Session (below) reconnects by itself and
// recovers its subscriptions.
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
// # Sessions: reconnect and recovery
//
// A Client does not reconnect by itself. A Session does: Connect opens one
// and returns once its first connection is up. When a connection ends, the
// session waits (exponential backoff with full jitter, see SessionOptions),
// reconnects and subscribes again to every channel with since set to the
// last position it saw, so that the handlers get every publication once,
// in order, across reconnects:
//
//	s, err := client.Connect(ctx, "ws://localhost:8080/connection/websocket", client.SessionOptions{})
//	...
//	defer s.Close()
//	sub, err := s.Subscribe(ctx, "chat:general", client.SubscribeOptions{History: 10}, client.Handlers{
//		OnSubscribed: func(e client.SubscribedEvent) {
//			if e.RecoveryFailed() { ... } // publications were missed: reload
//		},
//		OnPublication: func(e client.PublicationEvent) { ... },
//	})
//
// The session stops reconnecting when the server's disconnect push says not
// to (codes 3500–3999: reconnecting would fail the same way), when a
// reconnect is refused for good (for example a bad token, or an expired
// one when SessionOptions.Token is not set to get fresh ones), and on
// Close; Done is then closed and Err says why. With SessionOptions.Token
// the session also answers the server's refresh push, so an expiring
// connection token does not drop the connection.
//
// Recovery works as docs/protocol.md describes. The recovered publications
// are delivered before the live ones, and a publication already delivered
// is dropped by its offset. When history cannot cover the gap (it was
// trimmed or expired, or the stream's epoch changed), OnSubscribed reports
// RecoveryFailed and the publications that follow are the channel's latest
// SubscribeOptions.History ones. Joins and leaves are not recovered.
//
// Handlers run on one delivery goroutine per session, one at a time, in the
// order of the events of all its subscriptions, so they need no locking of
// their own; they may call the session's methods (not Close). Between the
// connections' reader goroutines and the delivery goroutine is a queue of
// SessionOptions.QueueSize events. The readers never wait for the
// handlers: when an event finds the queue full, the session drops the
// connection and reconnects, recovering from the last publication queued —
// as the server does with a slow consumer — so a slow handler costs a
// reconnect, not memory and, while history covers the gap, not messages.
//
// A Session runs two goroutines, one that owns the connection and
// reconnects and one that calls the handlers, plus those of its current
// connection; Close stops them all. Publish, History and Presence run on the
// current connection, waiting for one while the session reconnects; they
// are not retried when a connection ends before their reply.
//
// To resume in another process, keep Subscription.Position (or the last
// PublicationEvent.Position) and pass it as SubscribeOptions.Since.
//
// With SubscribeOptions.Delta a subscription asks for delta publications
// (docs/protocol.md): a Session applies them and its handlers get whole
// data; a delta that does not apply ends the connection, and the session
// reconnects and recovers. The pushes of Client.Subscribe carry deltas as
// the server sent them: apply them with ApplyDelta.
package client
