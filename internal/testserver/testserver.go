// Package testserver runs real redcast servers for tests: on a random
// loopback port, shut down (and checked) when the test ends.
package testserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/redcast/redcast/server"
)

// shutdownTimeout bounds the graceful shutdown at the end of a test.
const shutdownTimeout = 10 * time.Second

// Start serves a server built from cfg on 127.0.0.1 at a random port and
// returns its host:port and the server. When the test ends the server is
// shut down; a shutdown error or Serve returning anything but
// http.ErrServerClosed fails the test.
func Start(t testing.TB, cfg server.Config) (string, *server.Server) {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserver: listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("testserver: shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testserver: Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String(), srv
}

// FreeAddr returns a loopback address nothing listens on (a port the
// system just handed out and took back), for a server that must be
// restarted at the same address, or a client that must fail to connect.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserver: listen: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
