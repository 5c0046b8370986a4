package redcast

import "github.com/redcast/redcast/hub"

// eventBytes returns what the client queues for ev: the event in the
// client's format, made into a frame by the client's framer when its
// transport gave one (once per broadcast either way).
func (c *Client) eventBytes(ev *hub.Event) []byte {
	if c.framer != nil {
		return ev.Framed(c.format, c.framer)
	}
	return ev.Bytes(c.format)
}
