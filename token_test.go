package redcast

import (
	"fmt"
	"testing"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// TestLeewayRefreshFollowsReply: a token past its exp, accepted within the
// verifier's leeway, calls for a refresh push at once; it comes after the
// connect reply, never before it (a client ignores pushes before its
// reply, and would then be closed with 3006 for not refreshing).
func TestLeewayRefreshFollowsReply(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret, Leeway: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, Config{Verifier: v}, Deps{})
	tok, err := auth.Mint(secret, auth.MintOptions{User: "u", TTL: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		tr := &fakeTransport{}
		c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Closed)
		c.HandleFrame(fmt.Appendf(nil, `{"id":1,"method":"connect","params":{"token":%q}}`, tok))
		c.Flush() // as a transport's read loop does after each frame
		lines := tr.waitLines(t, 2)
		if lines[0].ID != 1 || lines[0].IsPush() || !lines[1].IsPush() || lines[1].Push.Type != protocol.PushRefresh {
			t.Fatalf("client %d got %+v then %+v, want the connect reply then the refresh push", i, lines[0], lines[1])
		}
	}
}
