package brokertest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// Discard is an EventHandler that drops what it is given, for brokers whose
// deliveries a test or benchmark does not look at.
type Discard struct{}

func (Discard) HandlePublication(context.Context, string, *protocol.Publication, protocol.StreamPosition) {
}
func (Discard) HandleJoin(context.Context, string, *protocol.ClientInfo)  {}
func (Discard) HandleLeave(context.Context, string, *protocol.ClientInfo) {}

// DeliveryScope implements broker.EventHandler: nothing to flush.
func (Discard) DeliveryScope(ctx context.Context) (context.Context, func()) { return ctx, func() {} }

// BenchmarkPublish measures Publish of a chat-sized message to a channel
// the broker is subscribed to (so delivery runs too): without history,
// with a history of 100, and from parallel goroutines (parallelism per
// GOMAXPROCS as b.SetParallelism takes it; 0 keeps the default), each on
// a channel of its own. start returns a started broker, closed when b ends.
func BenchmarkPublish(b *testing.B, start func(b *testing.B) broker.Broker, parallelism int) {
	data := []byte(`{"text":"hello, this is a chat message of a typical size"}`)
	ctx := context.Background()
	b.Run("history=0", func(b *testing.B) { benchPublish(b, start(b), data, broker.PublishOptions{}) })
	b.Run("history=100", func(b *testing.B) { benchPublish(b, start(b), data, broker.PublishOptions{HistorySize: 100}) })
	b.Run("parallel/history=100", func(b *testing.B) {
		br := start(b)
		b.ReportAllocs()
		if parallelism > 0 {
			b.SetParallelism(parallelism)
		}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			ch := "chat:bench" + strconv.FormatInt(next.Add(1), 10) // a channel per goroutine
			if err := br.Subscribe(ctx, ch); err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				if _, err := br.Publish(ctx, ch, data, broker.PublishOptions{HistorySize: 100}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func benchPublish(b *testing.B, br broker.Broker, data []byte, opts broker.PublishOptions) {
	ctx := context.Background()
	if err := br.Subscribe(ctx, "chat:bench"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Publish(ctx, "chat:bench", data, opts); err != nil {
			b.Fatal(err)
		}
	}
}
