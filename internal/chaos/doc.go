// Package chaos is redcast's fault-injection test, shipped in the binary as
// "redcast chaos": it starts its own redis-server (with an append-only file
// synced on every write) and several redcast node processes on loopback,
// subscribes many reconnecting clients to many channels across the nodes,
// publishes continuously through several nodes, and meanwhile kills
// (SIGKILL) and restarts nodes and Redis on a schedule. At the end it checks,
// for every client and channel, that every acknowledged publication was
// received exactly once and in order, or that the client was told
// explicitly that it could not recover (and counts those).
//
// A soak mode runs steady load without faults and samples each node's
// memory and goroutines, to show that nothing grows without bound.
package chaos
