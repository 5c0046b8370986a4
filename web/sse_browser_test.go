package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/internal/testproxy"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/transport/sse"
)

// ssePage is the page the SSE browser test serves itself: an EventSource
// on the channels of its own query string that keeps every event it gets.
const ssePage = `<!doctype html>
<meta charset="utf-8">
<title>redcast SSE test</title>
<link rel="icon" href="data:,">
<script>
window.events = [];
window.es = new EventSource('/connection/sse' + location.search);
window.es.onmessage = (e) => window.events.push({id: e.lastEventId, msg: JSON.parse(e.data)});
</script>
`

// sseEvent is an event as the page kept it.
type sseEvent struct {
	ID  string `json:"id"`
	Msg struct {
		Push      string                `json:"push"`
		Channel   string                `json:"channel"`
		Pub       *protocol.Publication `json:"pub"`
		Recovered bool                  `json:"recovered"`
		Since     *struct{}             `json:"since"`
		Code      int                   `json:"code"`
		Reconnect bool                  `json:"reconnect"`
	} `json:"msg"`
}

// TestEventSource drives the browser's own EventSource against the SSE
// endpoint: it receives publications, recovers exactly what it missed on
// two channels when it reconnects by itself after a network failure, is
// told when recovery is impossible, and gets the final disconnect event
// when the server drains.
func TestEventSource(t *testing.T) {
	ns := auth.DefaultNamespaces()
	small := ns["chat"]
	small.HistorySize = 3
	ns["small"] = small
	b := memory.New(memory.Config{})
	node := redcast.NewNode(redcast.Config{Namespaces: ns}, redcast.Deps{Broker: b})
	if err := node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := sse.NewHandler(node, sse.Options{Retry: 100 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("GET /connection/sse", h)
	mux.HandleFunc("GET /sse.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(ssePage))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
		srv.Close()
	})
	// The browser goes through a proxy that can cut its connections.
	proxy := testproxy.New(t, strings.TrimPrefix(srv.URL, "http://"))
	publish := func(ch string, n int) {
		t.Helper()
		for i := range n {
			if _, err := b.Publish(t.Context(), ch, fmt.Appendf(nil, `{"text":"%d"}`, i), broker.PublishOptions{HistorySize: ns[protocol.Namespace(ch)].HistorySize}); err != nil {
				t.Fatal(err)
			}
		}
	}

	browser := startBrowser(t)
	p := newPage(t, browser)
	p.name = "sse.html"
	p.do(chromedp.Navigate("http://" + proxy.Addr() + "/sse.html?channel=chat:one&channel=chat:two&channel=small:three"))
	p.waitJS("three subscribe events", `window.events.filter((e) => e.msg.push === 'subscribe').length === 3`)
	publish("chat:one", 2)
	publish("chat:two", 1)
	publish("small:three", 1)
	p.waitJS("four publications", `window.events.filter((e) => e.msg.push === 'publication').length === 4`)

	// A network failure; while the browser cannot reconnect, more is
	// published than small:three keeps.
	p.expect("net::ERR_")
	proxy.SetRefuse(true)
	proxy.Cut()
	p.waitJS("EventSource reconnecting", `window.es.readyState === EventSource.CONNECTING`)
	publish("chat:one", 3)
	publish("chat:two", 2)
	publish("small:three", 5)
	proxy.SetRefuse(false)
	p.waitJS("six subscribe events", `window.events.filter((e) => e.msg.push === 'subscribe').length === 6`)
	p.waitJS("recovered publications", `window.events.filter((e) => e.msg.push === 'publication' &&
		e.msg.channel !== 'small:three').length === 8`)

	events := p.sseEvents()
	subs := map[string]sseEvent{}
	offsets := map[string][]uint64{}
	for _, e := range events {
		if e.ID == "" {
			t.Errorf("event without id: %+v", e.Msg)
		}
		switch e.Msg.Push {
		case sse.PushSubscribe:
			subs[e.Msg.Channel] = e
		case protocol.PushPublication:
			offsets[e.Msg.Channel] = append(offsets[e.Msg.Channel], e.Msg.Pub.Offset)
		}
	}
	for _, ch := range []string{"chat:one", "chat:two"} {
		if s := subs[ch]; !s.Msg.Recovered || s.Msg.Since == nil {
			t.Errorf("%s after the reconnect: %+v, want recovered from a position", ch, s.Msg)
		}
	}
	if s := subs["small:three"]; s.Msg.Recovered || s.Msg.Since == nil {
		t.Errorf("small:three after the reconnect: %+v, want not recovered, with the position asked for", s.Msg)
	}
	want := map[string][]uint64{"chat:one": {1, 2, 3, 4, 5}, "chat:two": {1, 2, 3}, "small:three": {1}}
	for ch, w := range want {
		if !slices.Equal(offsets[ch], w) {
			t.Errorf("%s: publications %v, want exactly %v", ch, offsets[ch], w)
		}
	}

	// Draining ends the stream with a disconnect event advising to
	// reconnect; the browser's next attempt is refused (503), which
	// closes the EventSource.
	p.expect("status of 503")
	h.Drain()
	p.waitJS("the disconnect event", `window.events.some((e) => e.msg.push === 'disconnect' && e.msg.code === 3001 && e.msg.reconnect)`)
	p.waitJS("EventSource closed", `window.es.readyState === EventSource.CLOSED`)
}

// sseEvents returns the events the SSE page kept.
func (p *page) sseEvents() []sseEvent {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	evs, err := chromedp.Run(ctx, chromedp.Evaluate[[]sseEvent](`window.events`))
	if err != nil {
		p.t.Fatalf("reading the events: %v", err)
	}
	return evs
}
