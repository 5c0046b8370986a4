package testproxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo starts a line echo server for the test.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	got, err := r.ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return got, err
}

func TestFreezeAndThaw(t *testing.T) {
	p := New(t, echo(t))
	old, oldR := dial(t, p.Addr())
	if got, err := roundTrip(t, old, oldR, "a", 5*time.Second); err != nil || got != "a\n" {
		t.Fatalf("before Freeze: %q, %v", got, err)
	}
	frozen, frozenR := dial(t, p.Addr())
	if got, err := roundTrip(t, frozen, frozenR, "b", 5*time.Second); err != nil || got != "b\n" {
		t.Fatalf("before Freeze: %q, %v", got, err)
	}
	if n := p.Accepted(); n != 2 {
		t.Fatalf("Accepted %d, want 2", n)
	}
	p.Freeze(1) // the second connection only
	if got, err := roundTrip(t, frozen, frozenR, "c", 200*time.Millisecond); err == nil {
		t.Fatalf("a frozen connection answered %q", got)
	}
	if got, err := roundTrip(t, old, oldR, "d", 5*time.Second); err != nil || got != "d\n" {
		t.Fatalf("an older connection while another is frozen: %q, %v", got, err)
	}
	fresh, freshR := dial(t, p.Addr())
	if got, err := roundTrip(t, fresh, freshR, "e", 5*time.Second); err != nil || got != "e\n" {
		t.Fatalf("a new connection while another is frozen: %q, %v", got, err)
	}
	p.Thaw()
	frozen.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := frozenR.ReadString('\n'); err != nil || got != "c\n" {
		t.Fatalf("after Thaw, what was held: %q, %v", got, err)
	}
	// A frozen connection still closes with the proxy.
	p.Freeze(0)
	p.Cut()
	frozen.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := frozenR.ReadString('\n'); err == nil {
		t.Fatal("a frozen connection survived Cut")
	}
}
