package resp_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/redcast/redcast/internal/resp"
	"github.com/redcast/redcast/internal/testredis"
)

// TestDo talks to a real redis-server: every reply type Do and DoList read.
func TestDo(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	ctx := t.Context()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"SET", "k", "a\r\nb"}, "OK"},
		{[]string{"GET", "k"}, "a\r\nb"},
		{[]string{"INCR", "n"}, "1"},
	} {
		if got, err := resp.Do(ctx, srv.Addr(), tc.args...); err != nil || got != tc.want {
			t.Errorf("Do(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
	if _, err := resp.Do(ctx, srv.Addr(), "GET", "missing"); !errors.Is(err, resp.ErrNil) {
		t.Errorf("GET of a missing key: %v, want ErrNil", err)
	}
	if _, err := resp.Do(ctx, srv.Addr(), "NOSUCHCOMMAND"); err == nil {
		t.Error("an unknown command did not fail")
	}
	if _, err := resp.Do(ctx, srv.Addr(), "RPUSH", "l", "x", "y"); err != nil {
		t.Fatal(err)
	}
	if got, err := resp.DoList(ctx, srv.Addr(), "LRANGE", "l", "0", "-1"); err != nil || !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("DoList(LRANGE) = %q, %v", got, err)
	}
	if _, err := resp.DoList(ctx, srv.Addr(), "GET", "k"); err == nil {
		t.Error("DoList of a scalar reply did not fail")
	}
}
