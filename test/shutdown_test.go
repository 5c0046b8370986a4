package test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// TestShutdown checks that Shutdown tells every client to reconnect
// (disconnect 3001, reconnect true), closes them all, and refuses new
// connections.
func TestShutdown(t *testing.T) {
	base, srv := startServer(t, redcast.Config{})
	ctx := testContext(t)
	var clients []*conn
	for i := range 3 {
		c := dial(t, base, fmt.Sprintf("c%d", i))
		if i > 0 {
			if _, err := c.Subscribe(ctx, "news", client.SubscribeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		clients = append(clients, c)
	}
	raw, _ := dialRawConnected(t, base, "raw")
	notConnected := dialRaw(t, protocolURL(base))
	plain := dialRaw(t, plainURL(base, "lobby", "name=plain"))
	waitPresence(t, clients[0], "chat:lobby", "plain")

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()

	raw.expectDisconnect(protocol.DisconnectShutdown.Code)
	notConnected.expectDisconnect(protocol.DisconnectShutdown.Code)
	plain.expectCloseCode(3001)
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("client %d still connected after Shutdown", i)
		}
		wantDisconnect(t, fmt.Sprintf("client %d", i), c.Err(), protocol.DisconnectShutdown.Code)
		pushes := c.ofType(protocol.PushDisconnect, "")
		if len(pushes) != 1 || pushes[0].Code != 3001 || !pushes[0].Reconnect || pushes[0].Reason == "" {
			t.Errorf("client %d disconnect pushes %+v, want one with code 3001, a reason and reconnect true", i, pushes)
		} else if d := pushes[0].Delay; d <= 0 || d > 3001 {
			t.Errorf("client %d was advised a reconnect delay of %d ms, want 1 to 3001 (spread 3s)", i, d)
		}
		if all := c.all(); all[len(all)-1].Type != protocol.PushDisconnect {
			t.Errorf("client %d: last push %+v, want the disconnect", i, all[len(all)-1])
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}

	dctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	if c, err := client.Dial(dctx, protocolURL(base), client.Options{}); err == nil {
		c.Close()
		t.Errorf("dial after Shutdown succeeded")
	}
}

// TestShutdownSpreadsReconnects: a Session told to reconnect by a node
// shutting down waits the delay the node advised, and the delays differ
// from client to client.
func TestShutdownSpreadsReconnects(t *testing.T) {
	const spread = 400 * time.Millisecond
	base, srv := startServer(t, redcast.Config{ReconnectSpread: spread})
	ctx := testContext(t)
	const n = 8
	// Each session's first disconnect: the shutdown's. A session that
	// already waited its delay reports its failed reconnect next, which
	// on a loaded machine can come before another session's first.
	var firsts []chan client.DisconnectEvent
	for range n {
		first := make(chan client.DisconnectEvent, 1)
		firsts = append(firsts, first)
		s, err := client.Connect(ctx, protocolURL(base), client.SessionOptions{
			OnDisconnect: func(e client.DisconnectEvent) {
				select {
				case first <- e:
				default:
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	delays := map[time.Duration]bool{}
	for _, first := range firsts {
		var e client.DisconnectEvent
		select {
		case e = <-first:
		case <-ctx.Done():
			t.Fatal("a session saw no disconnect")
		}
		wantDisconnect(t, "session", e.Err, protocol.DisconnectShutdown.Code)
		if !e.Reconnect || e.Delay <= 0 || e.Delay > spread+time.Millisecond {
			t.Errorf("disconnect event %+v, want a reconnect after at most %v", e, spread)
		}
		delays[e.Delay] = true
	}
	if len(delays) < 2 {
		t.Errorf("every session got the same delay: %v", delays)
	}
}

// TestShutdownDelay: during ShutdownDelay the server answers /readyz with
// 503 and refuses new connections while its clients stay connected; then
// it disconnects them as usual.
func TestShutdownDelay(t *testing.T) {
	addr, srv := testserver.Start(t, server.Config{ShutdownDelay: 2 * time.Second})
	base := "ws://" + addr
	ctx := testContext(t)
	c := dial(t, base, "stays")
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	waitFor(t, "/readyz to answer 503", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the delay: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("a client was hurt during the delay: %v", err)
	}
	if nc, err := client.Dial(ctx, protocolURL(base), client.Options{}); err == nil {
		nc.Close()
		t.Error("a new connection was accepted during the delay")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	wantDisconnect(t, "client", c.Err(), protocol.DisconnectShutdown.Code)
}
