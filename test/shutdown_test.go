package test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
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
