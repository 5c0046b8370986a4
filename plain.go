package redcast

import (
	"github.com/redcast/redcast/protocol"
)

// JoinRoom connects a plain-mode client as an anonymous user called name and
// subscribes it to ch. With echo the client receives its own publications.
func (c *Client) JoinRoom(ch, name string, echo bool) error {
	if _, err := c.Connect(protocol.ConnectParams{Name: name}); err != nil {
		return err
	}
	c.echo = echo
	return c.Subscribe(protocol.SubscribeParams{Channel: ch}, nil)
}

// PublishText publishes a plain-mode text frame to ch as {"text": text}.
// The transport bounds the text by MaxDataSize; its JSON form may be longer.
// Plain mode has no way to answer "too many requests", so a client over
// its publish rate is made to wait: its later frames are read only when
// the rate allows, and the TCP connection pushes back on it.
func (c *Client) PublishText(ch string, text []byte) error {
	if err := c.node.policy.CanPublish(nil, ch, true); err != nil {
		return err
	}
	if err := c.publishLimit().Wait(c.ctx); err != nil {
		return err
	}
	data := protocol.PlainData(text)
	ns, err := c.node.policy.Namespace(ch)
	if err != nil {
		return err
	}
	_, err = c.node.publish(c.ctx, sourcePlain, ch, data, c.publishOptions(ns))
	return err
}

// CheckPlainRoom reports whether an anonymous plain-mode client may join
// channel ch, so that the transport can refuse it before upgrading: plain
// clients are anonymous, subscribe to the room and publish into it.
func (n *Node) CheckPlainRoom(ch string) error {
	if n.cfg.RequireToken {
		return protocol.ErrUnauthorized.WithMessage("anonymous clients are not accepted")
	}
	if ns, err := n.policy.Namespace(ch); err == nil && (n.cfg.Proxy.ConnectURL != "" && n.cfg.Proxy.Backend != nil ||
		n.subscribeProxy(ns, ch) != "" || n.publishProxy(ns, ch) != "") {
		// Plain mode cannot carry what the backend answers.
		return protocol.ErrPermissionDenied.WithMessage("the backend decides in this room: use the full protocol")
	}
	if err := n.policy.CanSubscribe(nil, ch, ""); err != nil {
		return err
	}
	return n.policy.CanPublish(nil, ch, true)
}
