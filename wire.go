package redcast

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// eventBytes returns what the client queues for ev: the event in the
// client's format, made into a frame by the client's framer when its
// transport gave one (once per broadcast either way).
func (c *Client) eventBytes(ev *hub.Event) []byte {
	if c.framer != nil {
		return ev.Framed(c.format, c.framer)
	}
	return ev.Bytes(c.format)
}

// deltaMsg returns what the subscription queues for ev when it sends a
// delta (see deliverLocked): the event's delta push, framed like the
// client's other broadcasts; nil when the subscription takes no deltas or
// the event has none.
func (s *subscription) deltaMsg(ev *hub.Event) []byte {
	if !s.delta || ev.Kind != hub.KindPublication {
		return nil
	}
	if fr := s.client.framer; fr != nil {
		return ev.FramedDelta(fr)
	}
	return ev.Delta()
}

// WantsDelta implements hub.DeltaSubscriber.
func (s *subscription) WantsDelta() bool { return s.delta }

// wantsDelta says whether a subscribe gets deltas: it asked for Fossil
// deltas (another format is error 101), the namespace allows them, and the
// client speaks the full protocol (plain mode and other protocols never
// get deltas).
func (c *Client) wantsDelta(p protocol.SubscribeParams, opts auth.Namespace) (bool, error) {
	switch p.Delta {
	case "":
		return false, nil
	case protocol.DeltaFossil:
		return opts.AllowDelta && c.format == hub.FormatProtocol, nil
	}
	return false, protocol.ErrBadRequest.WithMessage("unknown delta format %q (want %q)", p.Delta, protocol.DeltaFossil)
}

// historyLimit is how many of the latest publications a subscribe that
// does not recover gets: what it asked for, none where the namespace keeps
// no history, and at least the latest one where the namespace sends the
// channel's current value on subscribe (LatestOnSubscribe, "cache"
// channels).
func historyLimit(p protocol.SubscribeParams, opts auth.Namespace) int {
	switch {
	case opts.HistorySize == 0:
		return 0
	case opts.LatestOnSubscribe:
		return max(p.History, 1)
	}
	return p.History
}

// WireBytes returns the counter of the bytes a transport's connections
// write (metrics.Metrics.WireBytes), compressed or not: a transport takes
// it once per connection and adds what each write wrote.
func (n *Node) WireBytes(transport string, compressed bool) prometheus.Counter {
	return n.metrics.Wire(transport, compressed)
}
