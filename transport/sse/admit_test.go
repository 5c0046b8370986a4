package sse_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/transport/sse"
)

// A node at its connection limit, and then one that drains, refuse a
// stream with HTTP 503 and error 109 that says which, before it starts.
func TestAdmission(t *testing.T) {
	n := startNode(t, redcast.Config{MaxConnections: 1}, sse.Options{})
	open(t, n.streamURL("", "chat:a"), nil)
	refused := func(want string) {
		t.Helper()
		s, res := tryOpen(t, n.streamURL("", "chat:a"), nil)
		if s != nil {
			t.Fatalf("a stream started, want 503 (%s)", want)
		}
		var body struct{ Error protocol.Error }
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusServiceUnavailable || body.Error.Code != protocol.ErrLimitExceeded.Code || !strings.Contains(body.Error.Message, want) {
			t.Errorf("got %s %+v, want 503, 109, %q", res.Status, body.Error, want)
		}
	}
	refused("connection limit reached")
	n.node.Drain()
	refused("server shutting down")
}
