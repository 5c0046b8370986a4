package redcast

import (
	"context"
	"fmt"
	"slices"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// This file is the Node's Go API for the application's backend: what it may
// do through the HTTP API of package api, or directly when it embeds a Node.
// (Node.Publish is in publish.go, with every other publish.)
// The backend is trusted: channel permissions do not apply, but channel
// names, namespaces and data limits do.

// History returns publications of a channel (the latest limit, or those
// after since when it is set) and its current position. limit is at most
// MaxHistoryLimit; 0 means MaxHistoryLimit. Errors: 101, 105, 106, 111 (the
// namespace keeps no history), 113 (since is no longer in history).
func (n *Node) History(ctx context.Context, ch string, limit int, since *protocol.StreamPosition) (*protocol.HistoryResult, error) {
	ns, err := n.policy.Namespace(ch)
	if err != nil {
		return nil, err
	}
	if ns.HistorySize <= 0 {
		return nil, protocol.ErrNotAvailable.WithMessage("history is off for channel %q", ch)
	}
	return n.history(ctx, ch, limit, since)
}

// history reads a channel's history for a caller allowed to.
func (n *Node) history(ctx context.Context, ch string, limit int, since *protocol.StreamPosition) (*protocol.HistoryResult, error) {
	if limit < 0 || limit > MaxHistoryLimit {
		return nil, protocol.ErrBadRequest.WithMessage("limit must be between 0 and %d", MaxHistoryLimit)
	}
	if limit == 0 {
		limit = MaxHistoryLimit
	}
	res, err := n.broker.History(ctx, ch, broker.HistoryOptions{Since: since, Limit: limit})
	if err != nil {
		n.metrics.BrokerErrors.WithLabelValues("history").Inc()
		return nil, err
	}
	if since != nil && !continues(*since, res) {
		return nil, protocol.ErrPositionExpired
	}
	return &protocol.HistoryResult{
		Publications: values(res.Publications),
		Offset:       res.Position.Offset,
		Epoch:        res.Position.Epoch,
	}, nil
}

// Presence returns the clients subscribed to a channel, across nodes.
// Errors: 105, 106, 111 (presence is off for the namespace).
func (n *Node) Presence(ctx context.Context, ch string) ([]protocol.ClientInfo, error) {
	ns, err := n.policy.Namespace(ch)
	if err != nil {
		return nil, err
	}
	if !ns.Presence {
		return nil, protocol.ErrNotAvailable.WithMessage("presence is off for channel %q", ch)
	}
	infos, err := n.presence.Presence(ctx, ch)
	if err != nil {
		return nil, err
	}
	return values(infos), nil
}

// channelLister is implemented by brokers that know which channels any node
// is subscribed to (the Redis one); without it a node knows only its own.
type channelLister interface {
	Channels(ctx context.Context) ([]string, error)
}

// Channels returns the active channels, sorted: those with at least one
// subscriber on any node when the broker can tell, else on this node.
// Internal channels are left out.
func (n *Node) Channels(ctx context.Context) ([]string, error) {
	var chans []string
	if l, ok := n.broker.(channelLister); ok {
		var err error
		if chans, err = l.Channels(ctx); err != nil {
			return nil, fmt.Errorf("redcast: list channels: %w", err)
		}
	} else {
		chans = n.hub.Channels()
	}
	chans = slices.DeleteFunc(chans, func(ch string) bool { return protocol.ValidateChannel(ch) != nil })
	slices.Sort(chans)
	return chans, nil
}

// LocalSubscribers returns how many connections of this node, of any
// protocol, are subscribed to a channel: a count of this node only
// (Subscribers counts every node's).
func (n *Node) LocalSubscribers(ch string) int { return n.hub.NumSubscribers(ch) }

// DisconnectUser disconnects every connection of a user, on every node,
// with d (DisconnectForced or DisconnectForcedReconnect, or another code).
// It returns once the request is handed to the broker; nodes act on it when
// it reaches them.
func (n *Node) DisconnectUser(ctx context.Context, user string, d protocol.Disconnect) error {
	if user == "" {
		return protocol.ErrBadRequest.WithMessage("user is empty")
	}
	return n.publishControl(ctx, control{Op: opDisconnect, User: user, Code: d.Code, Reason: d.Reason})
}

// UnsubscribeUser unsubscribes every connection of a user from a channel,
// on every node; each gets an unsubscribe push. Like DisconnectUser it
// returns once the request is handed to the broker.
func (n *Node) UnsubscribeUser(ctx context.Context, user, ch string) error {
	if user == "" {
		return protocol.ErrBadRequest.WithMessage("user is empty")
	}
	if _, err := n.policy.Namespace(ch); err != nil {
		return err
	}
	return n.publishControl(ctx, control{Op: opUnsubscribe, User: user, Channel: ch})
}

// Namespace returns the options of ch's namespace (errors 102, 101 for an
// invalid channel name).
func (n *Node) Namespace(ch string) (auth.Namespace, error) {
	return n.policy.Namespace(ch)
}
