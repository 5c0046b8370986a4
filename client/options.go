package client

import (
	"context"
	"net/http"
	"time"

	"github.com/redcast/redcast/protocol"
)

// Options configure a Client. The zero value of every field means its
// default, so Options{} connects an anonymous client that drops pushes.
type Options struct {
	// Name is the display name sent in connect (at most
	// protocol.MaxNameLength bytes); others see it as info.name.
	Name string
	// Token is the connection token sent in connect.
	Token string
	// Header are extra headers of the WebSocket upgrade request (a Cookie
	// that the server's connect proxy forwards to its backend, say).
	Header http.Header

	// OnPush is called for every push the server sends (publication, join,
	// leave and disconnect), from the reader goroutine, in order. The push
	// is the callee's to keep. It must not block for long and must not wait
	// for a reply on the same Client. Nil drops pushes.
	OnPush func(*protocol.Push)

	// MaxFrameSize is the largest frame the client writes; commands issued
	// together are packed into frames of at most this size, and a single
	// command that does not fit fails with ErrFrameTooLarge. It should not
	// exceed the server's limit. Default 64 KiB, the server's default.
	MaxFrameSize int
	// MaxMessageSize is the largest message the client accepts from the
	// server; a larger one ends the connection. Default 64 MiB, which holds
	// a full history reply of maximum-size publications.
	MaxMessageSize int64
	// WriteTimeout bounds one socket write. Default 10s.
	WriteTimeout time.Duration
	// PingTimeout is how long past the ping interval announced in the
	// connect reply the client waits to hear anything from the server
	// before it considers the connection lost. Default 10s; negative
	// disables the check.
	PingTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultMaxFrameSize   = 64 << 10
	DefaultMaxMessageSize = 64 << 20
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingTimeout    = 10 * time.Second
)

func (o Options) withDefaults() Options {
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingTimeout == 0 {
		o.PingTimeout = DefaultPingTimeout
	}
	return o
}

// SubscribeOptions are the optional params of Subscribe.
type SubscribeOptions struct {
	// Since asks to recover every publication after this position.
	Since *protocol.StreamPosition
	// History asks for the latest History publications when not
	// recovering, or when recovery fails (at most 1000).
	History int
	// Token is a subscription token, for channels whose namespace needs one.
	Token string
	// JoinLeave asks for the channel's join and leave pushes, which the
	// server sends when the channel's namespace has join/leave on; the
	// subscribe result's JoinLeave says whether it does. Without it none
	// come. A Session asks by itself when the Handlers have OnJoin or
	// OnLeave.
	JoinLeave bool
	// Delta asks for delta publications (Fossil), where the channel's
	// namespace allows them (the subscribe result's Delta says whether it
	// does): after the first, a publication carries only what changed since
	// the one before. A Session applies them and gives its handlers whole
	// data; the pushes of Client.Subscribe carry them as the server sent
	// them (see ApplyDelta).
	Delta bool
}

// HistoryOptions are the optional params of History.
type HistoryOptions struct {
	// Limit is the most publications returned (1 … 1000; 0 means 1000).
	Limit int
	// Since returns the publications after this position instead of the
	// latest ones.
	Since *protocol.StreamPosition
}

// SessionOptions configure a Session. The zero value of every field means
// its default.
type SessionOptions struct {
	// Conn configures every connection the session opens: name, token,
	// limits and timeouts. Its OnPush is not used: the session hands
	// pushes to the Handlers of each subscription.
	Conn Options

	// BaseDelay and MaxDelay shape the wait before each reconnect attempt:
	// attempt n (counting from 0) waits a random duration between 0 and
	// min(MaxDelay, BaseDelay·2ⁿ) — exponential backoff with full jitter,
	// so that clients dropped together do not come back together. The
	// count starts again once a connection has stayed up for MaxDelay.
	// Defaults 500ms and 20s.
	BaseDelay time.Duration
	MaxDelay  time.Duration

	// QueueSize bounds the events waiting for the handlers. An event that
	// finds the queue full is not queued: the session closes the
	// connection (ErrQueueFull) and reconnects, recovering from the last
	// publication it queued, so nothing is lost while the server's history
	// covers the gap (when it does not, OnSubscribed reports it). A
	// subscribe reply counts as one event whatever the number of
	// publications it carries. Default 1024.
	QueueSize int

	// Token, when set, is called for the connection token of each
	// connection the session opens, the first one included (Conn.Token is
	// then not used), and when the server says that the token expired (a
	// refresh push): the session sends the new one with refresh. With it,
	// an expiring token does not end the session. It is called from the
	// session's connection goroutine (for the first connection, from
	// Connect) with a context that ends with the session; an error counts
	// as a failed connection attempt. Without it, a connection token that
	// expires ends the session when the server disconnects (3006) and
	// refuses to connect again with it (error 115).
	Token func(ctx context.Context) (string, error)

	// OnConnect is called each time a connection is up, the first one
	// included, as its subscriptions are being restored. OnDisconnect
	// is called each time a connection ends or a reconnect attempt fails.
	// Both are called from the session's connection goroutine, not in
	// order with the handlers; they delay reconnecting while they run
	// and must not call Close.
	OnConnect    func(ConnectEvent)
	OnDisconnect func(DisconnectEvent)
}

// Defaults of SessionOptions.
const (
	DefaultBaseDelay = 500 * time.Millisecond
	DefaultMaxDelay  = 20 * time.Second
	DefaultQueueSize = 1024
)

func (o SessionOptions) withDefaults() SessionOptions {
	o.Conn.OnPush = nil
	if o.BaseDelay <= 0 {
		o.BaseDelay = DefaultBaseDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	o.MaxDelay = max(o.MaxDelay, o.BaseDelay)
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	return o
}
