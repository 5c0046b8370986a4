package client

import (
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
}

// HistoryOptions are the optional params of History.
type HistoryOptions struct {
	// Limit is the most publications returned (1 … 1000; 0 means 1000).
	Limit int
	// Since returns the publications after this position instead of the
	// latest ones.
	Since *protocol.StreamPosition
}
