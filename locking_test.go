package redcast

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// TestConcurrentChannelOps drives subscribe, unsubscribe, publish and
// disconnect of many clients on one channel at once, for the race detector
// and the lock order of LOCKING.md: it must end without a race, a deadlock
// (the test's timeout) or a leaked goroutine (TestMain), and every client
// that stays subscribed must see the publications made after its subscribe
// reply without a gap (offsets consecutive).
func TestConcurrentChannelOps(t *testing.T) {
	n := startNode(t, Config{QueueMaxMessages: 1 << 16, QueueMaxBytes: 64 << 20, PublishRate: -1, SubscribeRate: -1})
	const (
		ch      = "chat:locks"
		workers = 8
		rounds  = 60
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				tr := &fakeTransport{}
				c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Connect(protocol.ConnectParams{}); err != nil {
					t.Error(err)
					return
				}
				if err := c.Subscribe(protocol.SubscribeParams{Channel: ch}, nil); err != nil {
					t.Error(err)
				}
				data := json.RawMessage(fmt.Sprintf(`"%d.%d"`, w, i))
				if _, err := c.Publish(protocol.PublishParams{Channel: ch, Data: data}); err != nil {
					t.Error(err)
				}
				switch i % 3 {
				case 0:
					c.Unsubscribe(ch)
				case 1:
					c.Disconnect(protocol.DisconnectShutdown)
				}
				// The frame path, with its hold and flush, too.
				c.HandleFrame([]byte(`{"id":9,"method":"publish","params":{"channel":"chat:locks","data":1}}`))
				c.Flush()
				c.Closed()
				<-c.out.Done() // Closed ends the outbox if nothing else did
			}
		})
	}
	// A client that stays subscribed throughout checks the order.
	tr := &fakeTransport{}
	c := newConnected(t, n, tr)
	var first uint64
	if err := c.Subscribe(protocol.SubscribeParams{Channel: ch}, func(res *protocol.SubscribeResult) { first = res.Offset }); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	pos, err := n.Publish(context.Background(), ch, []byte(`"last"`))
	if err != nil {
		t.Fatal(err)
	}
	var pubs []uint64
	wait.For(t, fmt.Sprintf("publication %d", pos.Offset), func() bool {
		pubs = pubs[:0]
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, m := range tr.msgs {
			var sm protocol.ServerMessage
			if err := json.Unmarshal(m, &sm); err != nil {
				t.Fatalf("bad line %q: %v", m, err)
			}
			if sm.IsPush() && sm.Push.Type == protocol.PushPublication {
				pubs = append(pubs, sm.Pub.Offset)
			}
		}
		return len(pubs) > 0 && pubs[len(pubs)-1] == pos.Offset
	})
	for i, o := range pubs {
		if o != first+1+uint64(i) {
			t.Fatalf("publication %d at offset %d, want %d", i, o, first+1+uint64(i))
		}
	}
}
