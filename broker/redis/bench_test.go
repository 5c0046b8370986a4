package redis

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/internal/testredis"
)

// BenchmarkPublish publishes to a real redis-server on loopback, with the
// node subscribed to the channel so that delivery runs too.
//
//	go test -run '^$' -bench Publish -benchmem ./broker/redis/
func BenchmarkPublish(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	data := []byte(`{"text":"hello, this is a chat message of a typical size"}`)
	bench := func(b *testing.B, opts broker.PublishOptions) {
		br := startBroker(b, srv, Config{}, nopHandler{})
		if err := br.Subscribe(context.Background(), "chat:bench"); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := br.Publish(context.Background(), "chat:bench", data, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("history=0", func(b *testing.B) { bench(b, broker.PublishOptions{}) })
	b.Run("history=100", func(b *testing.B) { bench(b, broker.PublishOptions{HistorySize: 100}) })
	b.Run("parallel/history=100", func(b *testing.B) {
		br := startBroker(b, srv, Config{}, nopHandler{})
		b.ReportAllocs()
		var next atomic.Int64
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			ch := "chat:bench" + strconv.FormatInt(next.Add(1), 10) // a channel per goroutine
			if err := br.Subscribe(context.Background(), ch); err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				if _, err := br.Publish(context.Background(), ch, data, broker.PublishOptions{HistorySize: 100}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkHistory reads the latest 10 of 100 publications.
func BenchmarkHistory(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	br := startBroker(b, srv, Config{}, nopHandler{})
	ctx := context.Background()
	for range 100 {
		if _, err := br.Publish(ctx, "chat:bench", []byte(`{"text":"hello"}`), broker.PublishOptions{HistorySize: 100}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.History(ctx, "chat:bench", broker.HistoryOptions{Limit: 10}); err != nil {
			b.Fatal(err)
		}
	}
}
