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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "redcast:", err)
		os.Exit(1)
	}
}
