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

// TestRedcastJSDeltaInChromium: redcast.js in Chromium subscribes with
// deltas over a compressed WebSocket, publishes a feed of similar
// documents, and gets every one whole, in order; the server sent all but
// the first as deltas.
func TestRedcastJSDeltaInChromium(t *testing.T) {
	addr := startServerWith(t, server.Config{Compression: websocket.Compression{Enabled: true}})
	browser := startBrowser(t)
	p := newPage(t, browser)
	p.name = "delta"
	p.do(chromedp.Navigate("http://" + addr + "/"))

	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	type result struct {
		Received int      `json:"received"`
		Errors   []string `json:"errors"`
		Deltas   int      `json:"deltas"`
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[result](`(async () => {
		const { Client } = await import('/redcast.js');
		const doc = (n) => ({ round: n, leader: 'player-' + (n % 7), players: Array.from({ length: 15 }, (_, i) => ({ name: 'player-' + i, score: 100 * i + (i === n % 15 ? n : 0) })) });
		const N = 100;
		const out = { received: 0, errors: [], deltas: 0 };
		const client = new Client('/connection/websocket');
		let subscribed;
		const ready = new Promise((r) => { subscribed = r; });
		client.subscribe('chat:feed', {
			delta: true,
			onSubscribed: () => subscribed(),
			onPublication: (pub) => {
				if (pub.delta || JSON.stringify(pub.data) !== JSON.stringify(doc(pub.offset))) out.errors.push('offset ' + pub.offset + ': ' + JSON.stringify(pub.data).slice(0, 60));
				out.received++;
			},
			onError: (e) => out.errors.push(String(e.error)),
		});
		await new Promise((resolve) => {
			client.on('connected', () => {
				// Count the deltas on the wire.
				const ws = client._ws;
				ws.addEventListener('message', (e) => { out.deltas += (e.data.match(/"delta":true/g) || []).length; });
				resolve();
			});
			client.connect();
		});
		await ready;
		for (let n = 1; n <= N; n++) await client.publish('chat:feed', doc(n));
		const until = Date.now() + 10000;
		while (out.received < N && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
		client.disconnect();
		return out;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("running redcast.js: %v\n%s", err, p.dump())
	}
	if res.Received != 100 || len(res.Errors) > 0 {
		t.Fatalf("received %d of 100, errors %q", res.Received, res.Errors)
	}
	if res.Deltas < 90 {
		t.Fatalf("%d of 99 publications came as deltas", res.Deltas)
	}
	t.Logf("%d publications, %d as deltas", res.Received, res.Deltas)
}
