package redcast

import (
	"context"
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/protocol"
)

// lateExpiry is presence whose one entry expires between the first
// ExpirePresence and the Presence that follows: Presence no longer shows
// it, the next ExpirePresence removes it.
type lateExpiry struct {
	*memPresence
	expires int
}

type memPresence = memory.Presence

func (p *lateExpiry) ExpirePresence(ctx context.Context, ch string) ([]broker.PresenceChange, error) {
	p.expires++
	if p.expires == 2 {
		return []broker.PresenceChange{{Client: &protocol.ClientInfo{Client: "late"}, User: true}}, nil
	}
	return nil, nil
}

// drain reports the entry that expired while it looked: a channel is never
// forgotten with an entry left behind unreported.
func TestDrainReportsLateExpiry(t *testing.T) {
	p := &lateExpiry{memPresence: memory.NewExpiringPresence(time.Minute)}
	var got []string
	empty, err := drain(t.Context(), p, "c", func(c broker.PresenceChange) { got = append(got, c.Client.Client) })
	if err != nil || !empty || len(got) != 1 || got[0] != "late" {
		t.Fatalf("drain: empty %v, err %v, reported %v; want the late entry reported and the channel empty", empty, err, got)
	}
	// An entry still live: not empty, nothing reported.
	live := memory.NewExpiringPresence(time.Minute)
	if _, err := live.AddPresence(t.Context(), "c", &protocol.ClientInfo{Client: "x"}); err != nil {
		t.Fatal(err)
	}
	got = nil
	if empty, err := drain(t.Context(), live, "c", func(c broker.PresenceChange) { got = append(got, c.Client.Client) }); err != nil || empty || len(got) != 0 {
		t.Fatalf("drain of a live entry: empty %v, err %v, reported %v", empty, err, got)
	}
}
