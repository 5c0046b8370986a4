// Package redcast is the engine of the redcast messaging server: a Node ties
// a broker (which carries publications between nodes and keeps history and
// presence) to the local hub (which fans them out to this node's
// connections), and a Client is one connection's protocol session.
//
// Transports (packages transport/websocket and transport/sse) read frames
// from a socket and hand them to a Client. Everything a Client sends goes
// through its connection's outbox.Outbox, which the transport makes with
// the node's OutboxOptions and a Sink of its own (how messages become its
// frames or events, and the write): package outbox is the one place where
// a message is queued, coalesced, written, and dropped as a slow consumer.
// The path of one publication:
//
//	Client.publish -> Node.publish -> Broker.Publish -> Node.HandlePublication
//	  -> Hub.Broadcast -> subscription.Deliver -> Batch.Push (queue, no I/O)
//	  ... the broker lets go of its locks ...
//	  -> Batch.Flush -> Outbox.Flush (a quiet connection: written here)
//	                    or the outbox's writer goroutine (a busy one)
//
// No lock is held while a socket is written: LOCKING.md at the repository's
// root gives the order of every lock, and docs/architecture.md draws the
// path.
package redcast
