package redcast

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// controlChannel carries requests between nodes (disconnect a user,
// unsubscribe a user) through the broker, so that they reach every node
// without a protocol of redcast's own. Its name has a byte no client
// channel may have, so no client can subscribe or publish to it.
const controlChannel = "$redcast.control"

// controlQueueSize bounds the control requests waiting to be handled.
const controlQueueSize = 1024

// Control operations.
const (
	opDisconnect  = "disconnect"
	opUnsubscribe = "unsubscribe"
)

// control is one request to every node, sent as JSON on controlChannel.
type control struct {
	Op      string `json:"op"`
	User    string `json:"user,omitempty"`
	Channel string `json:"channel,omitempty"`
	Code    uint16 `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// JTI and Before (Unix ms) name the revoked tokens of revocation
	// operations (revoke.go).
	JTI    string `json:"jti,omitempty"`
	Before int64  `json:"before,omitempty"`
	// Node is the info of an opNode announcement.
	Node *NodeInfo `json:"node,omitempty"`
	// Survey names a survey (survey.go), From the node that sent the
	// request or reply, To the node a reply is for; Channels are those
	// to count, Counts the answer.
	Survey   string         `json:"survey,omitempty"`
	From     string         `json:"from,omitempty"`
	To       string         `json:"to,omitempty"`
	Channels []string       `json:"channels,omitempty"`
	Counts   map[string]int `json:"counts,omitempty"`
}

// publishControl sends c to every node, this one included.
func (n *Node) publishControl(ctx context.Context, c control) error {
	data, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("redcast: encode control: %w", err)
	}
	if _, err := n.broker.Publish(ctx, controlChannel, data, broker.PublishOptions{}); err != nil {
		return fmt.Errorf("redcast: publish control: %w", err)
	}
	return nil
}

// receiveControl queues a control publication for the control goroutine:
// broker handlers must not block or call the broker, which unsubscribing
// does. A full queue drops the request, with an error logged.
func (n *Node) receiveControl(data []byte) {
	select {
	case n.controls <- data:
	default:
		n.missedControl.Store(true)
		n.log.Error("control queue full: request dropped", "request", string(data))
	}
}

// handleControls handles queued control requests until ctx ends. Once
// the queue is empty after it dropped requests, it rechecks every
// connection's tokens (recheckTokens), again until the check is complete:
// a revocation, an invalidation or a block that was dropped still closes
// what it must, from the store.
func (n *Node) handleControls(ctx context.Context) {
	t := time.NewTicker(reconnectCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case data := <-n.controls:
			n.handleControl(ctx, data)
			if len(n.controls) > 0 {
				continue
			}
		case <-t.C:
		}
		if n.missedControl.Swap(false) && !n.recheckTokens(ctx) {
			n.missedControl.Store(true)
		}
	}
}

func (n *Node) handleControl(ctx context.Context, data []byte) {
	var c control
	if err := json.Unmarshal(data, &c); err != nil {
		n.log.Error("bad control request", "request", string(data), "err", err)
		return
	}
	if c.Op == opNode {
		if info, ok := nodeInfoFrom(c); ok {
			n.table.record(info)
		}
		return
	}
	if n.handleRevocation(c) || n.handleSurvey(ctx, c) {
		return
	}
	if c.User == "" {
		n.log.Error("control request without a user", "request", string(data))
		return
	}
	for _, cl := range n.clientList() {
		if cl.user() != c.User {
			continue
		}
		switch c.Op {
		case opDisconnect:
			cl.Disconnect(protocol.Disconnect{Code: c.Code, Reason: c.Reason})
		case opUnsubscribe:
			cl.unsubscribeByServer(c.Channel)
		default:
			n.log.Error("unknown control operation", "op", c.Op)
			return
		}
	}
}

// user returns the client's user id, "" when anonymous.
func (c *Client) user() string {
	if creds := c.credentials(); creds != nil {
		return creds.User
	}
	return ""
}

// unsubscribeByServer unsubscribes the client from ch and tells it with an
// unsubscribe push, after the last publication it gets from ch.
func (c *Client) unsubscribeByServer(ch string) {
	c.mu.Lock()
	s := c.subs[ch]
	c.mu.Unlock()
	if s == nil || !c.forget(s) {
		return
	}
	c.unsubscribeFrom(s)
	if c.format != hub.FormatProtocol {
		return
	}
	msg, err := protocol.AppendPush(nil, &protocol.Push{Type: protocol.PushUnsubscribe, Channel: ch, Reason: "unsubscribed by the server"})
	if err == nil {
		c.send(msg)
	}
}
