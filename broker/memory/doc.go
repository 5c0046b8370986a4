// Package memory is redcast's embedded broker: it keeps channel streams,
// history and presence in the memory of a single node, so that Config{} of
// the server works without any other process.
//
// A Broker implements broker.Broker and a Presence implements
// broker.PresenceManager. Nothing is shared between nodes and nothing
// survives a restart: after one, every channel starts a new epoch and
// clients that try to recover are told to start over.
//
// # Streams
//
// Each channel has a stream: its epoch (a random name for this lifetime of
// the stream), its latest offset, and up to PublishOptions.HistorySize recent
// publications, each kept until its HistoryTTL passes. Channels are spread
// over a fixed number of shards by a hash of their name, and each stream has
// its own lock, so publishers of unrelated channels do not contend.
//
// A stream that the node is not subscribed to and whose history is empty is
// forgotten Config.StreamTTL after its last publication (or after the node
// unsubscribed, if later); the next publication then starts a new epoch at
// offset 1. Reading the history of a channel without a stream creates one,
// so that the epoch it reports is the one its first publication gets. A goroutine owned by the
// Broker (started by Start, stopped by Close) frees expired history and
// forgotten streams periodically; reads and writes also drop what expired,
// so results never depend on when it last ran.
//
// # Delivery
//
// Publish delivers to the EventHandler synchronously, while holding the
// channel's lock, so one channel's publications reach the handler in offset
// order even with concurrent publishers. The handler must therefore return
// quickly and must not call back into the Broker for the same channel.
// Publications handed to the handler and returned by History are shared
// with the broker's history: treat them as read-only.
package memory
