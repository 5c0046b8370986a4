package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/websocket"
)

// TestChatPageWithCompression: Chromium negotiates permessage-deflate with
// a server that allows it, and the chat page works over compressed frames
// both ways (every message compressed: MinSize -1).
func TestChatPageWithCompression(t *testing.T) {
	addr := startServerWith(t, server.Config{Compression: websocket.Compression{Enabled: true, MinSize: -1}})
	browser := startBrowser(t)
	base := "http://" + addr

	alice := openPage(t, browser, base, "deflate")
	bob := openPage(t, browser, base, "deflate")

	ctx, cancel := context.WithTimeout(alice.ctx, waitTimeout)
	defer cancel()
	ext, err := chromedp.Run(ctx, chromedp.Evaluate[string](`new Promise((resolve, reject) => {
		const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/connection/websocket');
		ws.onopen = () => { resolve(ws.extensions); ws.close(); };
		ws.onerror = () => reject(new Error('websocket failed'));
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("opening a WebSocket: %v", err)
	}
	if !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("Chromium's WebSocket negotiated %q, want permessage-deflate", ext)
	}

	alice.join("alice")
	bob.join("bob")
	long := strings.Repeat("compressible ", 40)
	alice.send(long)
	bob.send("short")
	want := []msg{{"alice", strings.TrimSpace(long)}, {"bob", "short"}}
	alice.waitMessages(want)
	bob.waitMessages(want)
}
