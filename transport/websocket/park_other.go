//go:build !linux

package websocket

import "log/slog"

// poller parks nothing here: every connection waits for its peer on a
// goroutine of its own (see Handler.readLoop).
type poller struct{}

// parking is a session's state in the poller: none here.
type parking struct{}

func (p *poller) init(func(*session), *slog.Logger) {}

// park reports that it cannot park s.
func (p *poller) park(*session) bool { return false }

// unpark has nothing to wake.
func (p *poller) unpark(*session) {}

// close has nothing to stop.
func (p *poller) close() error { return nil }
