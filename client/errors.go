package client

import (
	"errors"
	"fmt"

	"github.com/redcast/redcast/protocol"
)

var (
	// ErrClosed is the error of calls made after Close, and what Err
	// returns once Close ended the connection.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost wraps the network error that ended a connection
	// the server did not close with a disconnect.
	ErrConnectionLost = errors.New("client: connection lost")
	// ErrFrameTooLarge is returned for a command that does not fit in
	// Options.MaxFrameSize; it was not sent.
	ErrFrameTooLarge = errors.New("client: command larger than the maximum frame size")
	// ErrProtocol wraps what the server sent that breaks the protocol (a
	// binary frame, a line that is not JSON); the connection is closed.
	ErrProtocol = errors.New("client: protocol violation by the server")
	// ErrQueueFull ends a Session's connection when its handlers fell
	// SessionOptions.QueueSize events behind; the session reconnects and
	// recovers. DisconnectEvent.Err wraps it.
	ErrQueueFull = errors.New("client: session queue full: handlers too slow")
	// ErrUnsubscribed is the error of an UnsubscribedEvent when the server
	// ended the subscription (the application's backend unsubscribed the
	// user from the channel).
	ErrUnsubscribed = errors.New("client: unsubscribed by the server")
	// errGap ends a Session's connection when a live publication does not
	// follow the previous one; the session reconnects and recovers.
	errGap = errors.New("client: gap in a channel's stream")
)

// disconnectError is the error of a connection the server closed on
// purpose, with a disconnect push or a close frame. It wraps the
// protocol.Disconnect so that errors.As finds it.
func disconnectError(d protocol.Disconnect) error {
	return fmt.Errorf("client: disconnected by the server: %w", d)
}
