package chaos

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// world is the clients of a run and what they saw.
type world struct {
	r        *run
	channels []string
	subs     []*subscriber
	pubs     []*client.Session

	mu     sync.Mutex
	acked  map[string][]protocol.StreamPosition // by channel
	failed int
}

// subscriber is one reconnecting client and what it received per channel.
type subscriber struct {
	s  *client.Session
	mu sync.Mutex
	ch map[string]*received
}

// received is what one client received of one channel.
type received struct {
	seen        map[protocol.StreamPosition]int // times each was received
	last        protocol.StreamPosition
	outOfOrder  int
	recoveryErr int // recoveries that failed (recovered: false)
}

func sessionOptions() client.SessionOptions {
	return client.SessionOptions{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second, QueueSize: 1 << 14}
}

func (r *run) startClients(ctx context.Context) (*world, error) {
	w := &world{r: r, acked: make(map[string][]protocol.StreamPosition)}
	for i := range r.opts.Channels {
		w.channels = append(w.channels, fmt.Sprintf("chat:%s-%d", r.prefix, i))
	}
	for i := range r.opts.Clients {
		node := r.nodes[i%len(r.nodes)]
		s, err := client.Connect(ctx, node.wsURL(), sessionOptions())
		if err != nil {
			w.close()
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		sub := &subscriber{s: s, ch: make(map[string]*received)}
		w.subs = append(w.subs, sub)
		for k := range r.opts.ChannelsPerClient {
			ch := w.channels[(i*r.opts.ChannelsPerClient+k)%len(w.channels)]
			rec := &received{seen: make(map[protocol.StreamPosition]int)}
			sub.ch[ch] = rec
			_, err := s.Subscribe(ctx, ch, client.SubscribeOptions{}, client.Handlers{
				OnSubscribed: func(e client.SubscribedEvent) {
					if e.RecoveryFailed() {
						sub.mu.Lock()
						rec.recoveryErr++
						sub.mu.Unlock()
					}
				},
				OnPublication: func(e client.PublicationEvent) {
					pos := e.Position()
					sub.mu.Lock()
					defer sub.mu.Unlock()
					rec.seen[pos]++
					if pos.Epoch == rec.last.Epoch && pos.Offset <= rec.last.Offset {
						rec.outOfOrder++
					}
					rec.last = pos
				},
			})
			if err != nil {
				w.close()
				return nil, fmt.Errorf("client %d: subscribe %s: %w", i, ch, err)
			}
		}
	}
	for p := range r.opts.Publishers {
		node := r.nodes[p%len(r.nodes)]
		s, err := client.Connect(ctx, node.wsURL(), sessionOptions())
		if err != nil {
			w.close()
			return nil, fmt.Errorf("publisher %d: %w", p, err)
		}
		w.pubs = append(w.pubs, s)
	}
	return w, nil
}

func (w *world) close() {
	for _, s := range w.subs {
		s.s.Close()
	}
	for _, s := range w.pubs {
		s.Close()
	}
}

// publish runs every publisher at its share of the rate until ctx ends.
func (w *world) publish(ctx context.Context) {
	var wg sync.WaitGroup
	every := time.Duration(float64(time.Second) * float64(len(w.pubs)) / w.r.opts.Rate)
	for p, s := range w.pubs {
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				ch := w.channels[(p+n*len(w.pubs))%len(w.channels)]
				// The last publish may outlive ctx: it is acked or failed for good.
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
				pos, err := s.Publish(pctx, ch, map[string]int{"p": p, "n": n})
				cancel()
				w.mu.Lock()
				if err != nil {
					w.failed++
				} else {
					w.acked[ch] = append(w.acked[ch], pos)
				}
				w.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// missing counts owed publications not received yet by clients that were
// not told they lost some.
func (w *world) missing() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, sub := range w.subs {
		sub.mu.Lock()
		for ch, rec := range sub.ch {
			if rec.recoveryErr > 0 {
				continue
			}
			for _, pos := range w.acked[ch] {
				if rec.seen[pos] == 0 {
					n++
				}
			}
		}
		sub.mu.Unlock()
	}
	return n
}

// settle waits until no client misses an owed publication, or timeout.
func (w *world) settle(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		m := w.missing()
		if m == 0 {
			w.r.logf("every client has everything it is owed")
			return
		}
		if time.Now().After(deadline) {
			w.r.logf("gave up waiting: %d deliveries still missing", m)
			return
		}
		sleep(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
	}
}

// report checks what every client received against what was acked.
func (w *world) report() *Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	rep := &Report{Failed: w.failed}
	ackedSet := make(map[string]map[protocol.StreamPosition]bool)
	for ch, list := range w.acked {
		rep.Acked += len(list)
		set := make(map[protocol.StreamPosition]bool, len(list))
		for _, pos := range list {
			if set[pos] {
				rep.AckedTwice++
			}
			set[pos] = true
		}
		ackedSet[ch] = set
	}
	for _, sub := range w.subs {
		sub.mu.Lock()
		for ch, rec := range sub.ch {
			rep.OutOfOrder += rec.outOfOrder
			rep.RecoveryFailures += rec.recoveryErr
			for pos, times := range rec.seen {
				if times > 1 {
					rep.Duplicates += times - 1
				}
				if !ackedSet[ch][pos] {
					rep.Unowed++
				}
			}
			for _, pos := range w.acked[ch] {
				rep.Expected++
				switch {
				case rec.seen[pos] > 0:
					rep.Delivered++
				case rec.recoveryErr > 0:
					rep.LostExplicitly++
				default:
					rep.Gaps++
				}
			}
		}
		sub.mu.Unlock()
	}
	return rep
}

// sample records each node's memory and goroutines every SampleEvery.
func (w *world) sample(ctx context.Context) {
	t := time.NewTicker(w.r.opts.SampleEvery)
	defer t.Stop()
	for {
		for i, n := range w.r.nodes {
			m, err := gauges(ctx, "http://"+n.base()+"/metrics", "process_resident_memory_bytes", "go_goroutines")
			if err != nil {
				w.r.logf("sample node %d: %v", i, err)
				continue
			}
			s := Sample{At: time.Since(w.r.start).Round(time.Second), Node: i, RSSBytes: m["process_resident_memory_bytes"], Goroutines: m["go_goroutines"]}
			w.r.mu.Lock()
			w.r.samples = append(w.r.samples, s)
			w.r.mu.Unlock()
			w.r.logf("node %d: rss %.1f MiB, %0.f goroutines", i, s.RSSBytes/(1<<20), s.Goroutines)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// gauges reads the values of unlabelled gauges from a Prometheus text
// endpoint.
func gauges(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(names))
	for _, name := range names {
		if f := families[name]; f != nil && len(f.GetMetric()) == 1 {
			out[name] = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return out, nil
}
