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
// The path of one publication on the memory broker:
//
//	Client.HandleFrame -> Client.Publish -> Node.publish -> Broker.Publish
//	  -> Node.HandlePublication -> Hub.Broadcast -> subscription.Deliver
//	  -> Batch.Push (queue, no I/O) ... Broker.Publish returns, no lock held ...
//	  -> Batch.Flush -> Outbox.Flush (a quiet connection: written here)
//	                    or the outbox's writer goroutine (a busy one)
//
// On Redis the publishes of a run of frames go together
// (Client.flushPublishes -> Node.publishMany -> Broker.PublishMany), and
// the delivery starts in the Redis broker's worker goroutine, whose own
// Batch (EventHandler.DeliveryScope) it flushes after each run of messages.
//
// No lock is held while a socket is written: LOCKING.md at the repository's
// root gives the order of every lock, and docs/architecture.md draws the
// path.
package redcast
