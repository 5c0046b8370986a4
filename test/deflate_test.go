package test

import (
	"strings"
	"testing"

	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/websocket"
)

// TestDeflateWithNodeWS: the ws package with perMessageDeflate negotiates
// compression and reads the server's compressed frames (and its own
// compressed frames are read by the server); a ws client that offers
// nothing gets plain frames.
func TestDeflateWithNodeWS(t *testing.T) {
	addr, _ := testserver.Start(t, server.Config{Compression: websocket.Compression{Enabled: true}})
	lines := runNode(t, "deflate.mjs", "REDCAST_URL=ws://"+addr+"/connection/websocket")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %v", len(lines), lines)
	}
	got := map[string]map[string]any{}
	for _, l := range lines {
		got[l["client"].(string)] = l
		if l["same"] != true {
			t.Errorf("%s: publication data differs", l["client"])
		}
	}
	d, p := got["deflate"], got["plain"]
	if !strings.Contains(d["extensions"].(string), "permessage-deflate") {
		t.Errorf("deflate client negotiated %q", d["extensions"])
	}
	if p["extensions"].(string) != "" {
		t.Errorf("plain client negotiated %q", p["extensions"])
	}
	size := p["size"].(float64)
	t.Logf("publication of %.0f bytes of data: %.0f bytes read compressed (with the publish reply), %.0f plain", size, d["bytes"], p["bytes"])
	if p["bytes"].(float64) < size || d["bytes"].(float64)*4 > p["bytes"].(float64) {
		t.Errorf("compressed client read %.0f bytes, plain one %.0f: want under a quarter", d["bytes"], p["bytes"])
	}
	// The metric counts the compressed connection's bytes apart.
	m := scrape(t, "http://"+addr)
	plain, compressed := m[`redcast_wire_bytes_total{compression="none",transport="websocket"}`], m[`redcast_wire_bytes_total{compression="deflate",transport="websocket"}`]
	if plain < size || compressed <= 0 || compressed*3 > plain {
		t.Errorf("redcast_wire_bytes_total: %.0f bytes plain, %.0f compressed", plain, compressed)
	}
}
