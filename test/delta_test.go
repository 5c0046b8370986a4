package test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/websocket"
)

// TestDeltaWithFossilDelta checks the server's delta publications with
// npm fossil-delta, an independent Fossil implementation: every delta
// applied to the previous data gives the published data (sent with a space
// the server compacts away), for subscribers with and without compression
// and for one that reconnects twice and recovers, on the memory broker and
// on Redis; redcast.js's own applyDelta agrees with fossil-delta, and its
// Client gives whole data. On a feed of 1,000 similar 2 KB documents it
// measures the bytes each subscriber read.
func TestDeltaWithFossilDelta(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		addr, _ := testserver.Start(t, server.Config{Compression: websocket.Compression{Enabled: true}})
		checkDeltaFeed(t, addr)
	})
	t.Run("redis", func(t *testing.T) {
		rs := testredis.Start(t, testredis.Options{})
		nodes := startRedisNodesWith(t, rs.URL(), 1, server.Config{Compression: websocket.Compression{Enabled: true}})
		checkDeltaFeed(t, nodes[0].base[len("ws://"):])
	})
}

func checkDeltaFeed(t *testing.T, addr string) {
	js, _ := filepath.Abs("../web/static/redcast.js")
	lines := runNode(t, "delta.mjs", "REDCAST_URL=ws://"+addr+"/connection/websocket", "REDCAST_JS="+js)
	bytes := map[string]float64{}
	var feed float64
	for _, l := range lines {
		if errs, _ := l["errors"].([]any); len(errs) > 0 {
			t.Errorf("%v: %v", l["subscriber"], errs)
		}
		switch {
		case l["check"] != nil:
			t.Logf("redcast.js applyDelta agreed with fossil-delta on %v cases", l["cases"])
		case l["feed"] != nil:
			feed = l["feed"].(float64)
			t.Logf("the script ran for %vms", l["ms"])
		case l["subscriber"] != nil:
			name := l["subscriber"].(string)
			if l["received"].(float64) != 1000 {
				t.Errorf("%s received %v publications, want 1000", name, l["received"])
			}
			if d, ok := l["deltas"].(float64); ok {
				switch name {
				case "plain", "deflate":
					if d != 0 {
						t.Errorf("%s got %v deltas without asking", name, d)
					}
				case "delta", "delta+deflate":
					if d < 990 {
						t.Errorf("%s got %v deltas of 999", name, d)
					}
				case "reconnecting":
					// What it missed when its connection went comes back
					// whole; so do the first publications after each
					// subscribe.
					missed, _ := l["missed"].(float64)
					t.Logf("reconnecting subscriber: %v deltas, %v publications missed", d, missed)
					if d+missed < 990 || l["recovered"] != true {
						t.Errorf("reconnecting subscriber: %v deltas, %v publications missed, recovered %v", d, missed, l["recovered"])
					}
				}
			}
			if b, ok := l["bytes"].(float64); ok {
				bytes[name] = b
			}
		}
	}
	if feed != 1000 {
		t.Fatalf("the script did not finish: %v", lines)
	}
	plain := bytes["plain"]
	t.Logf("1000 publications of ~2 KB: plain %.0f bytes; delta %.0f (%.1f%%), deflate %.0f (%.1f%%), delta+deflate %.0f (%.1f%%)",
		plain, bytes["delta"], 100*bytes["delta"]/plain, bytes["deflate"], 100*bytes["deflate"]/plain, bytes["delta+deflate"], 100*bytes["delta+deflate"]/plain)
	if bytes["delta"] > plain/5 {
		t.Errorf("with deltas a subscriber read %.0f bytes, more than 20%% of %.0f", bytes["delta"], plain)
	}
}

// TestDeltaRefusedOrOff: a format other than fossil is error 101; a
// namespace without allow_delta subscribes without deltas (the result says
// so) and sends whole publications.
func TestDeltaRefusedOrOff(t *testing.T) {
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"nodelta": {HistorySize: 10}})})
	raw, _ := dialRawConnected(t, base, "raw")
	r := raw.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "chat:x", Delta: "xdelta"})
	wantReplyError(t, "subscribe with delta xdelta", r, r.ID, protocol.ErrBadRequest)

	c := dial(t, base, "c")
	ctx := testContext(t)

	res, err := c.Subscribe(ctx, "nodelta:x", client.SubscribeOptions{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Delta {
		t.Fatal("deltas on in a namespace without allow_delta")
	}
	for i := range 3 {
		if _, err := c.Publish(ctx, "nodelta:x", map[string]any{"text": strings.Repeat("same ", 50), "i": i}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.waitPubs(t, "nodelta:x", 3) {
		if p.Delta {
			t.Fatalf("publication %d is a delta", p.Offset)
		}
	}
}
