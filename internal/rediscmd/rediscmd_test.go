package rediscmd_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/redcast/redcast/internal/rediscmd"
	"github.com/redcast/redcast/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReplies(t *testing.T) {
	s := testredis.Start(t, testredis.Options{})
	ctx, addr := t.Context(), s.Addr()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"SET", "k", "v"}, "OK"},
		{[]string{"GET", "k"}, "v"},
		{[]string{"RPUSH", "l", "a", "b"}, "2"},
	} {
		if got, err := rediscmd.Do(ctx, addr, c.args...); err != nil || got != c.want {
			t.Errorf("%v = %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	if info, err := rediscmd.Do(ctx, addr, "INFO", "server"); err != nil || !strings.Contains(info, "redis_version:") {
		t.Errorf("INFO = %q, %v", info, err)
	}
	if _, err := rediscmd.Do(ctx, addr, "GET", "none"); !rueidis.IsRedisNil(err) {
		t.Errorf("GET of no key: %v, want rueidis.Nil", err)
	}
	if _, err := rediscmd.Do(ctx, addr, "NOSUCHCOMMAND"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if got, err := rediscmd.DoList(ctx, addr, "LRANGE", "l", "0", "-1"); err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("LRANGE = %q, %v", got, err)
	}
	if got, err := rediscmd.DoList(ctx, addr, "MGET", "k", "none"); err != nil || !slices.Equal(got, []string{"v", ""}) {
		t.Errorf("MGET with a missing key = %q, %v", got, err)
	}
	if _, err := rediscmd.DoList(ctx, addr, "GET", "k"); err == nil {
		t.Error("DoList of a string reply succeeded")
	}
}

// TestGivesUp: a command to a paused server or a killed one fails within
// its context rather than being retried.
func TestGivesUp(t *testing.T) {
	s := testredis.Start(t, testredis.Options{})
	start := time.Now()
	if _, err := rediscmd.Do(t.Context(), s.Addr(), "CLIENT", "PAUSE", "5000", "ALL"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("CLIENT PAUSE took %v: the client waited for the paused server", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := rediscmd.Do(ctx, s.Addr(), "PING"); err == nil {
		t.Error("PING answered by a paused server")
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("a command with a 200 ms context took %v", d)
	}
	s.Kill()
	if _, err := rediscmd.Do(t.Context(), s.Addr(), "PING"); err == nil {
		t.Error("PING to a killed server succeeded")
	}
}
