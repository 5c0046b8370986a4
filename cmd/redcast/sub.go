package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// subLine is how sub prints a publication.
type subLine struct {
	Channel string               `json:"channel"`
	Offset  uint64               `json:"offset"`
	Epoch   string               `json:"epoch"`
	Time    int64                `json:"time,omitempty"`
	Data    json.RawMessage      `json:"data"`
	From    *protocol.ClientInfo `json:"from,omitempty"`
}

// runSub is "redcast sub": it prints the publications of the channels as
// JSON lines, reconnecting and recovering, until ctx ends.
func runSub(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf connFlags
	cf.register(fs)
	history := fs.Int("history", 0, fmt.Sprintf("print the latest `N` publications of each channel first, and again when recovery fails (0 … %d)", redcast.MaxHistoryLimit))
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: redcast sub [flags] CHANNEL...

Prints every publication of the channels to the standard output, one JSON
line each:

  {"channel":"news","offset":8,"epoch":"KX3B7QPA","time":1764390000123,"data":{"text":"hi"},"from":{"client":"R3QX…"}}

When the connection drops, sub reconnects (with backoff) and recovers what
it missed, so each publication is printed once, in order. When the server's
history no longer covers the gap, it says so on the standard error and
goes on with the latest --history publications. Interrupt it to stop.

Flags:
`)
		fs.PrintDefaults()
	}
	if help, err := parseArgs(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("sub: want at least one CHANNEL")
	}
	if *history < 0 || *history > redcast.MaxHistoryLimit {
		return fmt.Errorf("sub: --history must be between 0 and %d", redcast.MaxHistoryLimit)
	}
	cf.fromEnv(getenv)

	errOut := &lockedWriter{w: stderr}
	var down atomic.Bool
	s, err := client.Connect(ctx, cf.url, client.SessionOptions{
		Conn: client.Options{Token: cf.token},
		OnConnect: func(client.ConnectEvent) {
			if down.Swap(false) {
				fmt.Fprintln(errOut, "redcast sub: reconnected")
			}
		},
		OnDisconnect: func(e client.DisconnectEvent) {
			down.Store(true)
			if e.Reconnect {
				fmt.Fprintf(errOut, "redcast sub: %v; reconnecting in %v\n", e.Err, e.Delay.Round(time.Millisecond))
			}
		},
	})
	if err != nil {
		return err
	}
	defer s.Close()

	// The handlers run on the session's delivery goroutine; the first
	// error they meet ends the command.
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	h := client.Handlers{
		OnSubscribed: func(e client.SubscribedEvent) {
			if e.RecoveryFailed() {
				fmt.Fprintf(errOut, "redcast sub: %s: recovery failed, publications were missed; going on from the latest %d\n", e.Channel, *history)
			}
		},
		OnPublication: func(e client.PublicationEvent) {
			err := enc.Encode(subLine{Channel: e.Channel, Offset: e.Offset, Epoch: e.Epoch, Time: e.Time, Data: e.Data, From: e.From})
			if err != nil {
				fail(fmt.Errorf("sub: writing: %w", err))
			}
		},
		OnUnsubscribed: func(e client.UnsubscribedEvent) {
			fail(fmt.Errorf("sub: %s: the server ended the subscription: %w", e.Channel, e.Err))
		},
	}
	for _, ch := range fs.Args() {
		if _, err := s.Subscribe(ctx, ch, client.SubscribeOptions{History: *history}, h); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sub: subscribe to %s: %w", ch, err)
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		return fmt.Errorf("sub: %w", s.Err())
	case err := <-failed:
		return err
	}
}

// lockedWriter serializes writes from the session's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
