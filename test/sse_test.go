package test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// TestSSEThroughServer: the server serves event streams at
// /connection/sse; publications made through the API reach them, and the
// server's Shutdown ends them with a disconnect event advising to
// reconnect instead of waiting for them.
func TestSSEThroughServer(t *testing.T) {
	addr, srv := testserver.Start(t, server.Config{APIKey: testAPIKey})
	httpBase := "http://" + addr
	ctx := testContext(t)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpBase+"/connection/sse?channel=chat:sse&channel=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /connection/sse: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Read the data of each event, in order.
	events := make(chan protocol.ServerMessage, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var m protocol.ServerMessage
			if json.Unmarshal([]byte(data), &m) == nil {
				events <- m
			}
		}
	}()
	next := func(what string) protocol.ServerMessage {
		t.Helper()
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatalf("stream ended before %s", what)
			}
			return m
		case <-ctx.Done():
			t.Fatalf("no %s", what)
		}
		return protocol.ServerMessage{}
	}
	// The stream subscribes both channels before it starts; skip its own
	// connect and subscribe events.
	var pub protocol.ServerMessage
	for i := 0; ; i++ {
		if i == 0 {
			apiOK(t, httpBase, "publish", map[string]any{"channel": "chat:sse", "data": map[string]string{"text": "hi"}}, nil)
		}
		if pub = next("the publication"); pub.Push.Type == protocol.PushPublication {
			break
		}
	}
	if pub.Channel != "chat:sse" || pub.Pub == nil || pub.Pub.Offset != 1 || string(pub.Pub.Data) != `{"text":"hi"}` {
		t.Fatalf("publication event %+v", pub.Push)
	}

	sctx, cancel := context.WithTimeout(ctx, waitTimeout/2)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown with an open stream: %v", err)
	}
	for {
		m := next("the disconnect event")
		if m.Push.Type != protocol.PushDisconnect {
			continue
		}
		if m.Code != protocol.DisconnectShutdown.Code || !m.Reconnect {
			t.Fatalf("final event %+v, want 3001 with reconnect", m.Push)
		}
		break
	}
	if _, ok := <-events; ok {
		t.Fatal("events after the disconnect")
	}
}
