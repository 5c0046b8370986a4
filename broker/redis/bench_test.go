package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
)

// BenchmarkPublish publishes to a real redis-server on loopback, with the
// node subscribed to the channel so that delivery runs too.
//
//	go test -run '^$' -bench Publish -benchmem ./broker/redis/
func BenchmarkPublish(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	brokertest.BenchmarkPublish(b, func(b *testing.B) broker.Broker {
		return startBroker(b, srv, Config{}, brokertest.Discard{})
	}, 8)
}

// BenchmarkHistory reads the latest 10 of 100 publications.
func BenchmarkHistory(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	br := startBroker(b, srv, Config{}, brokertest.Discard{})
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

// BenchmarkPresence measures what a node pays per channel for presence: a
// refresh of one of 100 clients, an expiry round that finds nothing to
// remove (the usual case), and a presence read.
func BenchmarkPresence(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	br := newBroker(b, srv, Config{})
	ctx := context.Background()
	for i := range 100 {
		if _, err := br.AddPresence(ctx, "chat:bench", clientInfo(fmt.Sprint("c", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Refresh", func(b *testing.B) {
		for b.Loop() {
			if _, err := br.AddPresence(ctx, "chat:bench", clientInfo("c7")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ExpireNone", func(b *testing.B) {
		for b.Loop() {
			if _, err := br.ExpirePresence(ctx, "chat:bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Presence", func(b *testing.B) {
		for b.Loop() {
			if _, err := br.Presence(ctx, "chat:bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPublishScript publishes serially to a real redis-server and
// reports, besides the time per call, the time Redis spent in the publish
// script (redis-µs/op, from INFO commandstats), which loopback and a busy
// machine blur less. "terms" runs the script as behind Sentinel or on a
// Cluster, reading the master's replication ID every time (see termLua).
//
//	go test -run '^$' -bench PublishScript -count 5 ./broker/redis/
func BenchmarkPublishScript(b *testing.B) {
	srv := testredis.Start(b, testredis.Options{})
	for _, mode := range []string{termNone, termSentinel} {
		name := "standalone"
		if mode != termNone {
			name = "terms"
		}
		b.Run(name, func(b *testing.B) {
			br := startBroker(b, srv, Config{}, brokertest.Discard{})
			br.term = mode
			ctx := context.Background()
			opts := broker.PublishOptions{HistorySize: 100}
			if _, err := br.Publish(ctx, "chat:bench", []byte(`{"text":"hello"}`), opts); err != nil {
				b.Fatal(err)
			}
			if _, err := srv.Do(ctx, "CONFIG", "RESETSTAT"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := br.Publish(ctx, "chat:bench", []byte(`{"text":"hello"}`), opts); err != nil {
					b.Fatal(err)
				}
			}
			info, err := srv.Do(ctx, "INFO", "commandstats")
			if err != nil {
				b.Fatal(err)
			}
			for line := range strings.Lines(info) {
				if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
					for f := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
						if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
							us, _ := strconv.ParseFloat(v, 64)
							b.ReportMetric(us, "redis-µs/op")
						}
					}
				}
			}
		})
	}
}
