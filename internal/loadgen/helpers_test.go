package loadgen_test

import (
	"context"
	"log/slog"
	"strings"
)

// cancelAt is a slog handler that cancels a context when a record's
// message starts with msg: a test's way to stop a run at a given phase.
type cancelAt struct {
	cancel context.CancelFunc
	msg    string
}

func (c *cancelAt) logger() *slog.Logger { return slog.New(c) }

func (c *cancelAt) Enabled(context.Context, slog.Level) bool { return true }

func (c *cancelAt) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, c.msg) {
		c.cancel()
	}
	return nil
}

func (c *cancelAt) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *cancelAt) WithGroup(string) slog.Handler      { return c }
