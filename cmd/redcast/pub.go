package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// defaultURL is where pub and sub connect without --url or REDCAST_URL.
const defaultURL = "ws://localhost:8080/connection/websocket"

// maxLine bounds a line of pub's standard input; the server refuses data
// above 16 KiB by default anyway.
const maxLine = 1 << 20

// connFlags are the flags of the client commands.
type connFlags struct {
	url, token string
}

func (f *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "full-protocol WebSocket URL (default $REDCAST_URL, else "+defaultURL+")")
	fs.StringVar(&f.token, "token", "", "connection token (default $REDCAST_TOKEN)")
}

// fromEnv fills in the flags not given from the environment, then the
// defaults.
func (f *connFlags) fromEnv(getenv func(string) string) {
	if f.url == "" {
		f.url = getenv("REDCAST_URL")
	}
	if f.url == "" {
		f.url = defaultURL
	}
	if f.token == "" {
		f.token = getenv("REDCAST_TOKEN")
	}
}

// parseArgs parses args with fs; help is not an error.
func parseArgs(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return false, err
}

// runPub is "redcast pub": it publishes DATA, or each line of stdin, and
// prints each acknowledged position as a JSON line.
func runPub(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast pub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf connFlags
	cf.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: redcast pub [flags] CHANNEL DATA

Publishes DATA to CHANNEL and prints the position the server acknowledged
as a JSON line, such as {"offset":8,"epoch":"KX3B7QPA"}.

DATA is sent as it is when it is JSON ({"text":"hi"}, 42, "quoted", true),
otherwise as a JSON string (hello is sent as "hello"). With DATA "-", each
non-blank line of the standard input is published that way, in order, with
one acknowledgement printed per line; a refusal for publishing too fast is
retried after a pause, any other error stops.

Flags:
`)
		fs.PrintDefaults()
	}
	if help, err := parseArgs(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("pub: want CHANNEL and DATA")
	}
	cf.fromEnv(getenv)
	channel, data := fs.Arg(0), fs.Arg(1)

	c, err := client.Dial(ctx, cf.url, client.Options{Token: cf.token})
	if err != nil {
		return err
	}
	defer c.Close()
	enc := json.NewEncoder(stdout)
	if data != "-" {
		return publish(ctx, c, enc, channel, data)
	}
	return publishLines(ctx, c, enc, channel, stdin)
}

// publishLines publishes each non-blank line of r until it ends or ctx is
// done (an interrupt ends the input: not an error).
func publishLines(ctx context.Context, c *client.Client, enc *json.Encoder, channel string, r io.Reader) error {
	// Reading happens on a goroutine of its own so that an interrupt is
	// not held up by a terminal waiting for a line. It exits when r ends
	// or, once stop is closed, when its read under way returns (for
	// os.Stdin, possibly only when the process exits).
	lines := make(chan string)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxLine)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				return
			}
		}
		readErr <- sc.Err()
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					return fmt.Errorf("reading the standard input: %w", err)
				}
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if err := publish(ctx, c, enc, channel, line); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// publish publishes text as JSON data (as a JSON string if it is not JSON),
// waiting and retrying while the server says it comes too fast, and
// prints the acknowledged position.
func publish(ctx context.Context, c *client.Client, enc *json.Encoder, channel, text string) error {
	data := json.RawMessage(text)
	if !json.Valid(data) {
		data, _ = json.Marshal(text) // a string: cannot fail
	}
	pause := 100 * time.Millisecond
	for {
		pos, err := c.Publish(ctx, channel, data)
		if err == nil {
			return enc.Encode(pos)
		}
		if !errors.Is(err, protocol.ErrTooManyRequests) {
			return fmt.Errorf("publish to %s: %w", channel, err)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause = min(2*pause, 5*time.Second)
	}
}
