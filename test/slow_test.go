package test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// TestSlowConsumer has a raw client subscribe and stop reading: once its
// send queue overflows it is disconnected, while a fast subscriber of the
// same channel receives every publication and the publisher is never held
// up.
func TestSlowConsumer(t *testing.T) {
	const (
		ch       = "firehose"
		maxPubs  = 20000
		batch    = 50
		dataSize = 4 << 10
	)
	base, _ := startServer(t, redcast.Config{
		QueueMaxMessages: 64,
		QueueMaxBytes:    128 << 10,
		WriteTimeout:     200 * time.Millisecond,
	})
	ctx := testContext(t)
	fast := dial(t, base, "fast")
	if _, err := fast.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, base, "pub")

	// The slow client's small receive buffer makes the server's writes
	// block sooner.
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = nc.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return nc, err
	}}
	slow, err := dialRawDialer(t, d, protocolURL(base))
	if err != nil {
		t.Fatal(err)
	}
	slowID := slow.connect("slow")
	decodeResult(t, slow.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: ch}), nil)
	fast.waitPush(t, protocol.PushJoin, ch, slowID)
	// From here on the slow client reads nothing.

	data := map[string]string{"text": strings.Repeat("x", dataSize)}
	published := 0
	left := func() bool {
		for _, p := range fast.ofType(protocol.PushLeave, ch) {
			if p.Client.Client == slowID {
				return true
			}
		}
		return false
	}
	start := time.Now()
	for !left() {
		if published >= maxPubs {
			t.Fatalf("slow client still subscribed after %d publications of %d bytes", published, dataSize)
		}
		for range batch {
			// A held-up publisher would wait forever; 20 s leaves room
			// for a loaded machine. Each publish gets its own 20 s, not
			// a share of ctx's 15 s for the whole test: the slow client
			// takes ~1000 publications (its socket buffers) to overflow,
			// which takes over 15 s on a loaded 2-core machine.
			pctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			_, err := pub.Publish(pctx, ch, data)
			cancel()
			if err != nil {
				t.Fatalf("publish %d: %v (the publisher must not be held up)", published+1, err)
			}
			published++
		}
		// Pace the publisher to the fast subscriber.
		fast.waitPubs(t, ch, published)
	}
	t.Logf("slow client disconnected after %d publications in %v", published, time.Since(start))

	got := fast.waitPubs(t, ch, published)
	checkOffsets(t, "fast subscriber", got, 1)
	if len(got) != published {
		t.Errorf("fast subscriber received %d publications, want %d", len(got), published)
	}
	if err := fast.Err(); err != nil {
		t.Errorf("fast subscriber disconnected: %v", err)
	}
	waitPresence(t, fast, ch, "fast")

	// The slow client's connection is closed: reading it now reaches the
	// end. What the server could still send must say 3002.
	var pushCode uint16
	for {
		m, err := slow.next()
		if err == nil {
			if m.IsPush() && m.Push.Type == protocol.PushDisconnect {
				pushCode = m.Push.Code
			}
			continue
		}
		t.Logf("slow client: connection ended with %v (disconnect push %d)", err, pushCode)
		var cf *closeFrame
		if errors.As(err, &cf) {
			if uint16(cf.code) != protocol.DisconnectSlowConsumer.Code {
				t.Errorf("slow client: close frame %d %q, want 3002", cf.code, cf.reason)
			}
			slow.expectEOF()
		} else if !isConnClosed(err) {
			t.Errorf("slow client: connection not closed: %v", err)
		}
		break
	}
	if pushCode != 0 && pushCode != protocol.DisconnectSlowConsumer.Code {
		t.Errorf("slow client: disconnect push %d, want 3002", pushCode)
	}
	httpBase := "http://" + strings.TrimPrefix(base, "ws://")
	waitFor(t, "the slow consumer in the metrics", func() bool {
		m := scrape(t, httpBase)
		return m["redcast_slow_consumers_total"] == 1 && m[`redcast_connections_closed_total{code="3002"}`] == 1
	})
}
