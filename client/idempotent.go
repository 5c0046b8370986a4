package client

import (
	"context"
	"errors"

	"github.com/redcast/redcast/protocol"
)

// PublishOptions are the options of a publish.
type PublishOptions struct {
	// IdempotencyKey, when set, makes the publish idempotent: the server
	// publishes a key once per channel within its idempotency window (5
	// minutes by default, on every node), and answers a repeat with the
	// first publication's position. At most protocol.MaxIdempotencyKeyLength
	// bytes of printable ASCII; a random id per publication (a UUID) is
	// the usual choice. Session.PublishWith retries a publish with a key
	// across reconnects.
	IdempotencyKey string
}

// PublishWith is Client.PublishWith on the current connection, waiting for
// one while the session reconnects (bounded by ctx). With an
// IdempotencyKey it is retried, on the next connection, when the
// connection ends before the reply (the publication may or may not have
// been stored: the key makes sure it is stored once), until ctx ends;
// without one it is not retried, as Publish.
func (s *Session) PublishWith(ctx context.Context, channel string, data any, opts PublishOptions) (protocol.StreamPosition, error) {
	var last *Client
	for {
		c, err := s.connOtherThan(ctx, last)
		if err != nil {
			return protocol.StreamPosition{}, err
		}
		pos, err := c.PublishWith(ctx, channel, data, opts)
		if err == nil || opts.IdempotencyKey == "" || !connectionEnded(err) || ctx.Err() != nil {
			return pos, err
		}
		last = c
	}
}

// connectionEnded reports whether a call failed because its connection
// ended (lost, or closed by the server with advice to reconnect), so that
// it may be sent again on the next one.
func connectionEnded(err error) bool {
	if errors.Is(err, ErrConnectionLost) {
		return true
	}
	var d protocol.Disconnect
	return errors.As(err, &d) && d.Reconnect()
}

// connOtherThan is conn for a connection other than old (nil: any): it
// waits while the session still holds old, which ended.
func (s *Session) connOtherThan(ctx context.Context, old *Client) (*Client, error) {
	for {
		s.mu.Lock()
		c, up, down, err := s.cur, s.up, s.down, s.err
		s.mu.Unlock()
		switch {
		case err != nil:
			return nil, err
		case c != nil && c != old:
			return c, nil
		case c != nil:
			// old ended but the session has not let go of it yet: wait
			// until it does, then for the next connection.
			up = down
		}
		select {
		case <-up:
		case <-s.over:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
