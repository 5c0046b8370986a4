package redcast

import (
	"context"
	"time"
)

// presenceRefresher is implemented by presence managers whose entries
// expire (the Redis one): the node re-adds the entries of its clients at
// least every PresenceRefreshInterval, so that the entries of a node that
// died expire while those of live nodes never do.
type presenceRefresher interface {
	PresenceRefreshInterval() time.Duration
}

// refreshPresence re-adds the presence of every local subscription with
// presence, every interval, until ctx ends.
func (n *Node) refreshPresence(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range n.clientList() {
			for _, ch := range c.presenceChannels() {
				actx, cancel := context.WithTimeout(ctx, cleanupTimeout)
				err := n.presence.AddPresence(actx, ch, c.info)
				cancel()
				if err != nil && ctx.Err() == nil {
					n.log.Warn("refresh presence failed", "channel", ch, "client", c.ID(), "err", err)
				}
			}
		}
	}
}

// clientList returns the registered clients.
func (n *Node) clientList() []*Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Client, 0, len(n.clients))
	for c := range n.clients {
		out = append(out, c)
	}
	return out
}

// presenceChannels returns the client's channels that keep presence.
func (c *Client) presenceChannels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for ch, s := range c.subs {
		if s.opts.Presence {
			out = append(out, ch)
		}
	}
	return out
}
