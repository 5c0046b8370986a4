package redcast

import (
	"context"
	"testing"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// pushesAbout returns the pushes of type typ about client id that tr got.
func pushesAbout(t *testing.T, tr *fakeTransport, typ, id string) int {
	n := 0
	for _, l := range tr.waitLines(t, 0) {
		if l.Push.Type == typ && l.Push.Client != nil && l.Push.Client.Client == id {
			n++
		}
	}
	return n
}

// TestNodeExpiresPresence runs a node on a presence whose entries expire:
// it keeps its own client in presence, announces one leave for a client
// that nobody refreshes (as if its node had crashed), and announces its
// own client's join again when its entry was removed behind its back (as
// if it had expired while Redis was out of reach).
func TestNodeExpiresPresence(t *testing.T) {
	const ttl = 600 * time.Millisecond
	pm := memory.NewExpiringPresence(ttl)
	n := startNodeWith(t, Config{}, Deps{Presence: pm})
	tr := &fakeTransport{}
	c := newConnected(t, n, tr)
	const ch = "chat:expiry"
	if err := c.Subscribe(protocol.SubscribeParams{Channel: ch, JoinLeave: true}, nil); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ghost := &protocol.ClientInfo{Client: "ghost"}
	if _, err := pm.AddPresence(ctx, ch, ghost); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	wait.For(t, "the ghost's leave", func() bool { return pushesAbout(t, tr, protocol.PushLeave, "ghost") > 0 })
	if took := time.Since(begin); took > 2*ttl {
		t.Errorf("the leave came %v after the ghost's last add, want within the TTL %v", took, ttl)
	}

	if _, err := pm.RemovePresence(ctx, ch, c.ID()); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the client's join again", func() bool { return pushesAbout(t, tr, protocol.PushJoin, c.ID()) == 2 })
	// Three TTLs more: the ghost leaves once, the live client never.
	wait.For(t, "three TTLs", func() bool { return time.Since(begin) > 3*ttl })
	if got := pushesAbout(t, tr, protocol.PushLeave, "ghost"); got != 1 {
		t.Errorf("%d leaves of the ghost, want 1", got)
	}
	if got := pushesAbout(t, tr, protocol.PushLeave, c.ID()); got != 0 {
		t.Errorf("%d leaves of the live client, want 0", got)
	}
	infos, err := pm.Presence(ctx, ch)
	if err != nil || len(infos) != 1 || infos[0].Client != c.ID() {
		t.Errorf("presence %v, %v; want only the live client", infos, err)
	}
}

// BenchmarkCrowdSubscribe subscribes 10,000 clients of one node to one
// channel (ns per subscribe): in a namespace without join/leave, in one
// with join/leave that nobody asks for, which must cost about the same,
// and in one where everyone asks (N²/2 pushes).
func BenchmarkCrowdSubscribe(b *testing.B) {
	const crowd = 10000
	namespaces := map[string]auth.Namespace{
		"off": {Anonymous: true, Presence: true},
		"on":  {Anonymous: true, Presence: true, JoinLeave: true},
	}
	for _, bc := range []struct {
		name    string
		channel string
		ask     bool
	}{
		{"namespace-without-join-leave", "off:crowd", false},
		{"join-leave-not-asked", "on:crowd", false},
		{"join-leave-asked", "on:crowd", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				n := NewNode(Config{Namespaces: namespaces, SubscribeRate: -1}, Deps{})
				if err := n.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				clients := make([]*Client, crowd)
				for i := range clients {
					c, err := n.NewClient(outbox.New(&fakeTransport{countOnly: true}, n.OutboxOptions()), hub.FormatProtocol)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.Connect(protocol.ConnectParams{}); err != nil {
						b.Fatal(err)
					}
					clients[i] = c
				}
				b.StartTimer()
				for _, c := range clients {
					if err := c.Subscribe(protocol.SubscribeParams{Channel: bc.channel, JoinLeave: bc.ask}, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				for _, c := range clients {
					c.Closed()
				}
				if err := n.Shutdown(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*crowd), "ns/subscribe")
		})
	}
}
