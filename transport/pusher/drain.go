package pusher

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/redcast/redcast/protocol"
)

// This file spreads the reconnects of a node's Pusher clients when it shuts
// down. redcast's own clients are told a random delay with their
// disconnect; Pusher's protocol has no such field: pusher-js reconnects
// at once after 4200, and 1 s after 4100, every client at the same
// instant. So the node closes its Pusher connections one by one, at
// moments spread over the shutdown delay, while it already refuses new
// connections and load balancers move away from it.

// drainReason is the reason of the close of a drained connection.
const drainReason = "Server shutting down: reconnect"

// track adds a session to the handler's, which Drain closes.
func (h *Handler) track(s *session) {
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
}

// untrack removes a session that ended.
func (h *Handler) untrack(s *session) {
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
}

// Drain closes the handler's connections with 4200 (clients reconnect at
// once) in a random order, at moments spread evenly over the middle half
// of d (the shutdown delay): none in its first quarter, while load
// balancers still learn from /readyz that the node is going (a client
// closed then could be sent back to it), none in its last, which
// Node.Shutdown follows. It returns when it closed the last or ctx ended.
// Call it while the node refuses new connections (redcast.Node.Drain), so
// that clients reconnect elsewhere; connections opened during the drain
// are left to Node.Shutdown.
func (h *Handler) Drain(ctx context.Context, d time.Duration) {
	h.mu.Lock()
	list := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		list = append(list, s)
	}
	h.mu.Unlock()
	rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i, s := range list {
		if wait := time.Until(start.Add(d/4 + d/2*time.Duration(i)/time.Duration(len(list)))); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
		s.client.Disconnect(protocol.Disconnect{Code: codeReconnect, Reason: drainReason})
	}
}
