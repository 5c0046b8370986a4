package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redcast/redcast/protocol"
)

// Subscribe subscribes to channel. The result carries the channel's position
// and, as asked in opts, the recovered or latest publications; publication
// pushes of the channel follow it through OnPush without gap or duplicate.
// Errors: protocol.ErrInvalidChannel, ErrUnknownNamespace,
// ErrAlreadySubscribed, ErrLimitExceeded.
func (c *Client) Subscribe(ctx context.Context, channel string, opts SubscribeOptions) (*protocol.SubscribeResult, error) {
	var res protocol.SubscribeResult
	err := c.call(ctx, protocol.MethodSubscribe, protocol.SubscribeParams{
		Channel:   channel,
		Since:     opts.Since,
		History:   opts.History,
		Token:     opts.Token,
		JoinLeave: opts.JoinLeave,
		Delta:     deltaParam(opts.Delta),
	}, &res)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// Refresh replaces the connection's token with a fresh one of the same user,
// before it expires or after a refresh push said it has. Errors:
// protocol.ErrUnauthorized, ErrTokenExpired.
func (c *Client) Refresh(ctx context.Context, token string) (*protocol.RefreshResult, error) {
	var res protocol.RefreshResult
	if err := c.call(ctx, protocol.MethodRefresh, protocol.RefreshParams{Token: token}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Unsubscribe unsubscribes from channel; no publication push of it follows.
// Unsubscribing from a channel the client is not subscribed to succeeds.
func (c *Client) Unsubscribe(ctx context.Context, channel string) error {
	return c.call(ctx, protocol.MethodUnsubscribe, protocol.ChannelParams{Channel: channel}, nil)
}

// Publish publishes data to channel and returns the position the broker
// assigned once it stored the publication. data is encoded with
// encoding/json; pass a json.RawMessage to send JSON as it is.
// Errors: protocol.ErrInvalidChannel, ErrUnknownNamespace, ErrDataTooLarge,
// ErrBrokerUnavailable.
func (c *Client) Publish(ctx context.Context, channel string, data any) (protocol.StreamPosition, error) {
	return c.PublishWith(ctx, channel, data, PublishOptions{})
}

// PublishWith is Publish with options (see PublishOptions).
func (c *Client) PublishWith(ctx context.Context, channel string, data any, opts PublishOptions) (protocol.StreamPosition, error) {
	raw, ok := data.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = marshal(data); err != nil {
			return protocol.StreamPosition{}, fmt.Errorf("client: encode publication data: %w", err)
		}
	}
	var pos protocol.StreamPosition
	err := c.call(ctx, protocol.MethodPublish, protocol.PublishParams{Channel: channel, Data: raw, IdempotencyKey: opts.IdempotencyKey}, &pos)
	return pos, err
}

// History returns publications of channel (the latest, or those after
// opts.Since) with the channel's current position. Errors:
// protocol.ErrInvalidChannel, ErrUnknownNamespace, ErrNotAvailable (no
// history in the namespace), ErrPositionExpired (Since cannot be continued).
func (c *Client) History(ctx context.Context, channel string, opts HistoryOptions) (*protocol.HistoryResult, error) {
	var res protocol.HistoryResult
	err := c.call(ctx, protocol.MethodHistory, protocol.HistoryParams{
		Channel: channel,
		Limit:   opts.Limit,
		Since:   opts.Since,
	}, &res)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// Presence returns the connections subscribed to channel, in no particular
// order. Errors: protocol.ErrInvalidChannel, ErrUnknownNamespace,
// ErrNotAvailable (presence is off in the namespace).
func (c *Client) Presence(ctx context.Context, channel string) ([]protocol.ClientInfo, error) {
	var res protocol.PresenceResult
	if err := c.call(ctx, protocol.MethodPresence, protocol.ChannelParams{Channel: channel}, &res); err != nil {
		return nil, err
	}
	return res.Clients, nil
}

// Ping makes an application-level round trip to the server.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, protocol.MethodPing, nil, nil)
}

// RPC sends an rpc command, which the server's backend answers (see
// docs/backend.md), and returns the data of its answer (nil when it gave
// none). data is encoded with encoding/json (nil: no data); pass a
// json.RawMessage to send JSON as it is. Errors: protocol.ErrNotAvailable
// (no rpc proxy on the server), ErrBackendUnavailable, and the backend's
// own errors (codes 400 and up).
func (c *Client) RPC(ctx context.Context, method string, data any) (json.RawMessage, error) {
	raw, ok := data.(json.RawMessage)
	if !ok && data != nil {
		var err error
		if raw, err = marshal(data); err != nil {
			return nil, fmt.Errorf("client: encode rpc data: %w", err)
		}
	}
	var res protocol.RPCResult
	if err := c.call(ctx, protocol.MethodRPC, protocol.RPCParams{Method: method, Data: raw}, &res); err != nil {
		return nil, err
	}
	return res.Data, nil
}
