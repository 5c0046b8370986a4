// Package redis is redcast's broker for many nodes: channels, history and
// presence live in Redis, so any number of nodes on one Redis behave as one
// server. It uses the rueidis client (auto-pipelining, and a dedicated
// connection for pub/sub).
//
// A Broker implements both broker.Broker and broker.PresenceManager:
//
//	b, err := redis.New(ctx, redis.Config{URL: "redis://127.0.0.1:6379/0"})
//	...
//	node := redcast.NewNode(cfg, redcast.Deps{Broker: b, Presence: b})
//
// # Deployments
//
// Config.URL chooses the deployment, in the URL form rueidis reads:
//
//	redis://host:6379/0                                   standalone Redis 6.2+
//	redis://s1:26379?addr=s2:26379&master_set=mymaster    Sentinel
//	redis://n1:7000?addr=n2:7000&addr=n3:7000             Redis Cluster 7+
//
// A standalone Redis needs 6.2 or newer (RESP3, exclusive stream ranges).
// With master_set the addresses are sentinels: the broker works on the
// master they name and follows it when they fail over. Otherwise rueidis
// asks the first address whether it is a Cluster node; the addresses are
// only seeds, the Cluster tells the rest. A Cluster needs Redis 7 or newer:
// the broker uses sharded pub/sub (SPUBLISH, SSUBSCRIBE) there, so a
// publication only travels within the shard that owns its channel, and
// pub/sub traffic grows with the shards instead of reaching every node.
// Every key and the pub/sub channel of a channel share one hash tag, so
// they live in one slot and each script stays atomic. Channel names must
// not contain braces (the node's channel rules forbid them).
//
// # Keys
//
// Everything is namespaced by Config.Prefix (P below), so several
// deployments can share one Redis. For a channel C:
//
//	P:{C}      the pub/sub channel: publications, joins and leaves, in order
//	P:{C}:m    hash: epoch, latest offset, history size, term of the epoch
//	P:{C}:s    stream: the history, one entry per publication, ID "<offset>-0"
//	P:{C}:p    hash: presence, client ID -> client info
//	P:{C}:z    sorted set: presence expiry per client ID
//	P:{C}:u    hash: presence, user -> how many of its clients are in P:{C}:p
//	P:{C}:c    string: the number of the channel's last user change
//
// and for the whole deployment P:sweep (the sweep registry, sweep.go) and
// the transition log (transitions.go): P:{!transitions}, :lead, :done.
//
// # Publishing
//
// Publish is one EVALSHA of a Lua script (one round trip; EVAL once after
// Redis lost its script cache): if the meta hash is missing it creates a new
// epoch (and deletes a stale stream); behind Sentinel and on a Cluster it
// also starts a new epoch when the channel's epoch began in another term
// of the master (see Failovers below); it increments the offset, appends to
// the stream with XADD MAXLEN ~ HistorySize (or deletes the stream when
// HistorySize is 0), refreshes the TTLs and PUBLISHes (SPUBLISHes on a
// Cluster) the publication with its offset and epoch. Being one script, publications of a channel get
// consecutive offsets in the order they are published to subscribers, from
// every node. History is one script too, so its position and publications
// are one snapshot; it creates the epoch of a channel that has none, so the
// epoch it reports is the one the first publication gets. Because MAXLEN ~
// trims lazily and publications may expire one by one, History only returns
// the newest HistorySize entries that have not expired (by the Redis
// clock). Data is stored and delivered byte for byte, in a small binary
// envelope rather than JSON.
//
// # Subscriptions and delivery
//
// Each Broker holds one pub/sub connection (on a Cluster, one per master,
// each channel on the master that owns its slot), all owned by one
// goroutine that sends every subscribe and unsubscribe command: requests
// that arrive while it is busy go out together, up to
// Config.SubscribeBatch channels per round trip (on a Cluster, one
// SSUBSCRIBE per slot, pipelined), so thousands of Subscribe calls at once
// cost a handful of round trips.
// Subscribe returns once Redis confirmed the subscription and the broker
// noted the channel's position. Unsubscribe stops delivery at once and
// unsubscribes in Redis later (not at all if the channel is subscribed
// again first).
//
// The pub/sub read loop never waits: it hands each message to one of
// Config.Workers goroutines chosen by a hash of the channel, through a
// queue of Config.WorkerQueue messages. A worker calls the EventHandler for
// one message at a time, so a channel's events arrive in order. When a
// queue is full the message is dropped and counted (Dropped), and the
// channel is resynchronised from history as below.
//
// # Outages
//
// For every subscribed channel the broker remembers the position it last
// delivered. When a pub/sub connection breaks, Ready reports false,
// Subscribe fails at once, and the broker reconnects with exponential
// backoff and jitter (Config.MinReconnectDelay to MaxReconnectDelay),
// subscribes the connection's channels again, then reads each channel's
// history since the remembered position and delivers what was missed, in
// order, before newer live publications and without duplicates. On a
// Cluster, the channels of the other masters keep being delivered
// meanwhile; the broker reads the topology (CLUSTER SHARDS) again before
// it reconnects, so after a failover it subscribes on the new master. When
// a master loses a slot (a failover, or a slot migrated) Redis
// unsubscribes that slot's channels itself; the broker then subscribes
// them where they are now and fills the gap the same way. A broker with
// no channel in a moved slot hears nothing of the move: when it subscribes
// to one later, the old master answers MOVED, and the broker reads the
// topology from that master and subscribes on the new one at once, still
// ready. Behind Sentinel, rueidis follows the master the sentinels name,
// and a broken (or deaf, see below) connection is reopened to it. The same happens when a
// live publication does not follow the remembered offset. When history
// cannot cover the gap (trimmed, expired, or a new epoch because Redis lost
// its data) the broker delivers what there is, and the node's
// subscriptions see the skipped offset or the new epoch and tell their
// clients to recover (disconnect code 3004).
//
// A pub/sub connection can also stay open and hear nothing: a network
// path that stopped forwarding, or a Sentinel failover that left it on the
// old master (rueidis moves its other connections to the new one). So every
// Config.ProbeInterval the broker publishes a probe to itself on each
// connection, through its ordinary client as any publication goes; a probe
// that has not come back by the next round makes the broker treat that
// connection as broken, as above, and count it (ProbeFailures). On a
// Cluster each connection's probe channel is in a slot its master owns;
// when a resharding moves that slot, Redis drops the probe subscription and
// the broker picks a new probe channel on the same master, without judging
// the connection meanwhile.
//
// While Redis is unreachable every call that needs it fails within
// Config.Timeout with an error wrapping broker.ErrUnavailable.
//
// # Failovers
//
// Replication is asynchronous: a replica that takes over may lack the last
// writes its master acknowledged, and would give their offsets out again,
// in the same epoch. Behind Sentinel and on a Cluster an epoch therefore
// lives in one term of one master: its replication ID, which Redis draws
// anew when a replica is promoted or a master restarts. The meta hash
// records the term each epoch began in (field r), and the publish and
// history scripts start a new epoch when it is not the master's own, before
// they hand out an offset: every failover starts a new epoch on the
// channels of that master, lossy or not, and no offset is acknowledged
// twice in one epoch. A slot migration moves keys whole: a term that is
// neither the master's nor that of the master it was promoted from makes
// the script ask the broker, which keeps the epoch if a master of the
// Cluster is in that term now (Broker.runScripts); the calls that ask at
// the same time share one reading of the Cluster, begun after their
// scripts answered (termReadings). Rewinds counts the
// epochs started so. A standalone Redis has no terms; a stream found
// behind what the broker delivered (writes lost to weak persistence)
// starts a new epoch when the broker notices it.
//
// # Presence
//
// The Broker is a broker.PresenceExpirer with the timing of
// Config.PresenceTTL: the node that owns a client calls AddPresence again
// every third of the TTL, and a client counts as expired five sixths of
// the TTL after its last add (Presence no longer lists it). Nodes call
// ExpirePresence every sixth of the TTL for the channels they serve; its
// script removes the expired entries and returns them to that one caller,
// which announces their leaves, so a crashed node's clients leave once
// each, within PresenceTTL. Adds and removes report, from the same
// scripts, whether the client (and its user, counted per channel) entered
// or left. The keys expire when nobody refreshes them.
//
// # Goroutines
//
// Start starts the pub/sub goroutine (and a goroutine per pub/sub
// connection that notices when it breaks), the probe goroutine and the
// workers; Close stops them,
// closes the connections and waits, so that the handler is never called
// after Close returns.
package redis
