package test

import (
	"strings"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/protocol"
)

// TestBatchedCommandsAreNotASlowConsumer sends many more commands in one
// frame than the connection's queue holds, from a client that reads every
// reply: the server must stop reading the client's commands while their
// replies wait (backpressure), not disconnect it as a slow consumer
// (3002), and answer every command in order.
func TestBatchedCommandsAreNotASlowConsumer(t *testing.T) {
	const pings = 5000
	base, _ := startServer(t, redcast.Config{QueueMaxMessages: 64, MaxFrameSize: 1 << 20})
	c := dialRaw(t, protocolURL(base))
	c.connect("batcher")
	lines := make([]string, pings)
	first := c.lastID + 1
	for i := range lines {
		_, lines[i] = c.command(protocol.MethodPing, nil)
	}
	c.send(lines...)
	for i := range pings {
		m, err := c.next()
		if err != nil {
			t.Fatalf("after %d of %d replies: %v", i, pings, err)
		}
		if m.IsPush() {
			t.Fatalf("after %d of %d replies: push %s %d %q", i, pings, m.Push.Type, m.Push.Code, m.Push.Reason)
		}
		if m.ID != first+uint32(i) || m.Error != nil {
			t.Fatalf("reply %d: id %d, error %v; want id %d and a result", i, m.ID, m.Error, first+uint32(i))
		}
	}
}

// TestBigHistoryReplyIsNotASlowConsumer: history larger than the queue's
// byte bound (200 publications of 12 KiB, 2.4 MB against 1 MiB) asked for
// in a subscribe reaches the client whole and in order (the reply carries
// what fits, the rest follows as pushes), not refused as a slow consumer.
func TestBigHistoryReplyIsNotASlowConsumer(t *testing.T) {
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"big": {HistorySize: 200}})})
	publishMany(t, dial(t, base, "pub"), "big:room", 200, map[string]string{"text": strings.Repeat("x", 12<<10)})
	c := dialRaw(t, protocolURL(base))
	c.connect("reader")
	var res protocol.SubscribeResult
	decodeResult(t, c.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "big:room", History: 200}), &res)
	next := uint64(1)
	for _, p := range res.Publications {
		if p.Offset != next {
			t.Fatalf("reply: offset %d, want %d", p.Offset, next)
		}
		next++
	}
	for next <= 200 {
		m, err := c.next()
		if err != nil {
			t.Fatalf("after offset %d: %v", next-1, err)
		}
		if !m.IsPush() || m.Push.Type != protocol.PushPublication {
			continue
		}
		if m.Pub.Offset != next {
			t.Fatalf("push: offset %d, want %d", m.Pub.Offset, next)
		}
		next++
	}
}
