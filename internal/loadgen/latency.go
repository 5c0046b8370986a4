package loadgen

import (
	"runtime"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// maxLatency is the largest latency recorded; larger ones count as it.
const maxLatency = int64(60 * time.Second)

// latencies is a latency histogram in nanoseconds that many subscriber
// goroutines record into: sharded, each shard behind its own lock, taken
// once per received frame rather than once per message.
type latencies struct {
	shards []latencyShard
}

type latencyShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [64]byte // keep shards' locks on separate cache lines
}

func newLatencies() *latencies {
	n := min(runtime.GOMAXPROCS(0), 16)
	l := &latencies{shards: make([]latencyShard, n)}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(1, maxLatency, 3)
	}
	return l
}

// shard returns the shard subscriber i records into.
func (l *latencies) shard(i int) *latencyShard { return &l.shards[i%len(l.shards)] }

// record adds the latencies (nanoseconds) in vals.
func (s *latencyShard) record(vals []int64) {
	s.mu.Lock()
	for _, v := range vals {
		_ = s.h.RecordValue(min(max(v, 1), maxLatency))
	}
	s.mu.Unlock()
}

// Latency summarizes the end-to-end latencies of the measured deliveries:
// from the publisher writing a publication to a subscriber reading it.
type Latency struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// summary merges the shards.
func (l *latencies) summary() Latency {
	all := hdrhistogram.New(1, maxLatency, 3)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	if all.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: all.TotalCount(),
		P50:   time.Duration(all.ValueAtQuantile(50)),
		P90:   time.Duration(all.ValueAtQuantile(90)),
		P99:   time.Duration(all.ValueAtQuantile(99)),
		P999:  time.Duration(all.ValueAtQuantile(99.9)),
		Max:   time.Duration(all.Max()),
	}
}
