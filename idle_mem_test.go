package redcast

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
)

// BenchmarkIdleClientHeap reports the live heap an idle client holds once
// connected and subscribed to a channel of its own (the transport's share
// is measured in package websocket): the number S3 of docs/performance.md
// doubles, since the GC lets the heap grow to twice what is live.
func BenchmarkIdleClientHeap(b *testing.B) {
	n := startNode(b, Config{Namespaces: map[string]auth.Namespace{
		"quiet": {Anonymous: true, Publish: true, HistorySize: 100, AttachInfo: true},
	}})
	const clients = 2000
	keep := make([]*Client, 0, clients)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range clients {
		c, err := n.NewClient(outbox.New(&fakeTransport{countOnly: true}, n.OutboxOptions()), hub.FormatProtocol)
		if err != nil {
			b.Fatal(err)
		}
		c.HandleFrame([]byte(`{"id":1,"method":"connect"}`))
		c.HandleFrame(fmt.Appendf(nil, `{"id":2,"method":"subscribe","params":{"channel":"quiet:%d"}}`, i))
		c.Flush()
		keep = append(keep, c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/clients, "heap-B/client")

	for _, c := range keep {
		c.Closed()
	}
}
