package redcast

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// This file holds what the transport of another protocol needs to run its
// connections on the node, as clients like any other: the same channels,
// hub, brokers and outboxes (Pusher's protocol, package transport/pusher).
// Such a transport authorizes its clients itself, by its own protocol's
// rules; what it lets through is checked here for channel names and
// namespaces only.

// ClientOptions are the options of NewClientWith.
type ClientOptions struct {
	// ID is the connection's id, which the protocol chose (Pusher's
	// socket_id); it must be unique on the cluster. Empty: a random id.
	ID string
	// Header are the headers of the client's request that calls to the
	// backend forward (Node.ForwardedHeaders), and Transport its name for
	// the backend ("websocket" when empty, "sse").
	Header    http.Header
	Transport string
	// Framer, when set, frames the broadcasts the client receives (see
	// hub.Event.Framed): the WebSocket transport's compression.
	Framer hub.Framer
}

// SubscribeAuthorized subscribes the client to a channel that its
// transport authorized by its own protocol's rules: the namespace's
// subscribe policy does not apply (the channel must still be valid and in a
// configured namespace). Otherwise it is Subscribe: reply is called with the
// result before any live publication is queued. prepare, when not nil, is
// called once the subscription holds back live publications, before reply:
// what it reads (Pusher's presence members) misses nothing that reaches
// the client live after reply; its error fails the subscribe.
//
// The client's credentials are left as they are: the grant is this
// subscribe's, not a claim the client keeps.
func (c *Client) SubscribeAuthorized(p protocol.SubscribeParams, prepare func(context.Context) error, reply func(*protocol.SubscribeResult)) error {
	return c.subscribe(p, reply, subscribeHow{authorized: true, prepare: prepare})
}

// SubscribeAuthorizedAs is SubscribeAuthorized with info as the client's
// info in this channel's presence (and its joins and leaves) instead of
// the client's own: Pusher's user_info, which each presence channel's
// channel_data gives anew. The client's user stays its own (SetUser).
func (c *Client) SubscribeAuthorizedAs(p protocol.SubscribeParams, info json.RawMessage, prepare func(context.Context) error, reply func(*protocol.SubscribeResult)) error {
	return c.subscribe(p, reply, subscribeHow{authorized: true, prepare: prepare, info: info})
}

// PublishAuthorized publishes data to a channel the client is subscribed
// to, for a transport that authorized it by its own protocol's rules: the
// namespace's publish policy (and its publish proxy) does not apply.
// Otherwise it is checked and published as a publish command of the full
// protocol is (publishRequest): the client's publish rate (error 116; the
// MaxRefusals-th refusal in a row also closes the connection with 3503,
// so that what the transport answers is not sent), the data (JSON, at
// most MaxDataSize), and the publication is not delivered back to the
// client (see skipOwn). Call it from the client's read goroutine. Errors:
// 101, 107 (not subscribed), 110, 116, and broker errors.
func (c *Client) PublishAuthorized(ch string, data []byte) error {
	if err := c.allow(c.publishLimit()); err != nil {
		if err == errLastRefusal {
			c.Disconnect(protocol.DisconnectTooManyRequests)
		}
		return err
	}
	req, err := c.publishRequest(protocol.PublishParams{Channel: ch, Data: data}, true)
	if err != nil {
		return err
	}
	_, err = c.node.publish(c.ctx, sourceClient, req.Channel, req.Data, req.Options)
	return err
}

// SetUser gives a client of another protocol its user, which presence
// records it by (Pusher's user_id and user_info, from the channel data its
// transport verified): once, before the client enters the presence of any
// channel. Setting it again to the same user does nothing (its first info
// stays); to another, it fails with ErrPermissionDenied (a client is one
// user).
func (c *Client) SetUser(user string, info json.RawMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.info.User {
	case user:
		return nil // the info it was given first stays
	case "":
	default:
		return protocol.ErrPermissionDenied.WithMessage("the connection is user %q already", c.info.User)
	}
	c.info.User, c.info.Info = user, info
	var creds auth.Credentials
	if c.creds != nil {
		creds = *c.creds
	}
	creds.User = user
	c.creds = &creds
	return nil
}

// OnUserPresence makes f hear every user entering a channel with presence
// (its first client to enter, anywhere in the cluster) and leaving it (its
// last client to leave), once per cluster, on the node that made the
// change: what Pusher's member_added and member_removed follow. f is
// called holding no lock, and may publish; it must not block for long.
// Call it before the node serves.
func (n *Node) OnUserPresence(f func(ctx context.Context, ch string, entered bool, info *protocol.ClientInfo)) {
	n.userPresence = f
}

// ReserveUsers reserves the users whose names start with prefix for the
// caller (a dialect that scopes its users, as Pusher's does with
// "pusher:"): a connect whose token or connect proxy names such a user
// is refused with 114, so that no redcast client passes for one of them.
// Call it before the node serves.
func (n *Node) ReserveUsers(prefix string) {
	n.reservedUsers = append(n.reservedUsers, prefix)
}

// checkUser refuses a user name that ReserveUsers reserved.
func (n *Node) checkUser(user string) error {
	for _, p := range n.reservedUsers {
		if strings.HasPrefix(user, p) {
			return protocol.ErrUnauthorized.WithMessage("user names starting with %q are reserved", p)
		}
	}
	return nil
}
