// Command redcast is the redcast messaging server. With no arguments it
// serves the chat page and the WebSocket protocol on :8080 with the embedded
// memory broker. See README.md for the flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; from then on the
	// signals' default action applies, so a second one stops at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "redcast:", err)
		os.Exit(1)
	}
}
