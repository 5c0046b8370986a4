package websocket

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/internal/wait"
)

// A node at its connection limit, and then one that drains, answer an
// upgrade with HTTP 503 that says which, before upgrading.
func TestAdmission(t *testing.T) {
	base, node := startNode(t, redcast.Config{MaxConnections: 1})
	dial(t, base+"/connection/websocket")
	wait.For(t, "the first client", func() bool { return node.NumClients() == 1 })
	refused := func(want string) {
		t.Helper()
		res, err := http.Get("http" + strings.TrimPrefix(base, "ws") + "/connection/websocket")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
			t.Errorf("got %s %q, want 503 %q", res.Status, body, want)
		}
	}
	refused("connection limit reached")
	node.Drain()
	refused("node shutting down")
}
