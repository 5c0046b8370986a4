// Package outbox is the one write path of every transport: where a message
// for a connection is queued, coalesced, written, and dropped as a slow
// consumer.
//
// An Outbox holds one connection's queue, bounded in messages and bytes; a
// Push past either bound fails and the owner closes the connection as a
// slow consumer (Close with protocol.DisconnectSlowConsumer, which drops
// the queue). The transport supplies a Sink: how messages become its
// frames or events, and the write itself. A writer goroutine runs only
// while there is something to write (and lingers 250 ms after, for the
// next burst); it drains everything queued into one
// write, and while messages keep coming it writes at most once per flush
// window (a Clock shared by a node's outboxes times the windows and
// stretches them while the process is saturated). A quiet connection is
// written by the goroutine that flushes it, with a write that never waits
// (Sink's optional TryWriter), saving the writer's wake-up.
//
// Nothing here writes to a peer while a lock is held. Push, PushControl,
// Close and Abort only queue and wake; a broadcast pushes through a Batch,
// which remembers the outboxes that need a write and flushes them after
// the broadcast let go of the hub's, the subscription's and the broker's
// locks. A client Holds its outbox while it handles a run of frames
// (Client.HandleFrame) and Releases it after (Client.Flush), so that the
// replies go out together; while half its queue waits, it stops reading
// commands until they went out (Crowded, WaitRoom). See LOCKING.md at the repository's root for the lock order.
package outbox
