package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
)

// stuckHandler records events, except that its first publication of
// channel stuck waits until release is closed, as a slow broadcast would.
type stuckHandler struct {
	*brokertest.Recorder
	stuck   string
	entered chan struct{} // closed when the stuck call began
	release chan struct{}
	once    sync.Once
}

func (h *stuckHandler) HandlePublication(ctx context.Context, ch string, pub *protocol.Publication, pos protocol.StreamPosition) {
	if ch == h.stuck {
		h.once.Do(func() {
			close(h.entered)
			<-h.release
		})
	}
	h.Recorder.HandlePublication(ctx, ch, pub, pos)
}

// TestReadLoopNeverWaitsForHandler: while a handler call is stuck,
// subscribing and unsubscribing channels of the same worker must not make
// the pub/sub read loop wait for it (it needs the subscription manager's
// lock, which those calls took while they waited for the worker): the
// other worker's channels keep being delivered, and probes keep coming
// back, so the connection is not taken for deaf.
func TestReadLoopNeverWaitsForHandler(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	h := &stuckHandler{Recorder: brokertest.NewRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
	prefix := newPrefix()
	sub := startBroker(t, srv, Config{Prefix: prefix, Workers: 2, ProbeInterval: probeInterval}, h)
	pub := startBroker(t, srv, Config{Prefix: prefix}, brokertest.Discard{})
	// stuck and same on one worker, other on the other.
	var stuck, same, other string
	for i := 0; stuck == "" || same == "" || other == ""; i++ {
		ch := fmt.Sprintf("room:%d", i)
		switch {
		case stuck == "":
			stuck = ch
		case sub.workerFor(ch) == sub.workerFor(stuck):
			if same == "" {
				same = ch
			}
		case other == "":
			other = ch
		}
	}
	h.stuck = stuck
	mustSubscribe(t, sub, stuck, other)
	mustPublish(t, pub, stuck, "1")
	brokertest.WaitFor(t, "the handler to be stuck", func() bool {
		select {
		case <-h.entered:
			return true
		default:
			return false
		}
	})

	var wg sync.WaitGroup
	defer wg.Wait()
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	defer release()
	var subErr error
	wg.Go(func() { subErr = sub.Subscribe(t.Context(), same) })
	wg.Go(func() { _ = sub.Unsubscribe(t.Context(), stuck) })
	back := sub.probesBack.Load()
	for i := 1; i <= 3; i++ {
		mustPublish(t, pub, other, fmt.Sprint(i))
	}
	brokertest.WaitFor(t, "the other worker's channel to be delivered", func() bool { return h.Count(other) == 3 })
	brokertest.WaitFor(t, "probes to come back", func() bool { return sub.probesBack.Load() >= back+3 })

	release()
	wg.Wait()
	if subErr != nil {
		t.Fatalf("Subscribe(%s): %v", same, subErr)
	}
	mustPublish(t, pub, same, "1")
	h.Wait(t, same, 1)
	if f, r := sub.ProbeFailures(), sub.Reconnects(); f != 0 || r != 0 {
		t.Fatalf("%d probe failures, %d reconnects while a handler was stuck; want none", f, r)
	}
}
