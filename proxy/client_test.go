package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestForwardedKeepsListedHeadersOnly(t *testing.T) {
	c := New(Config{Headers: []string{"cookie", " X-Real-Ip ", ""}})
	got := c.Forwarded(http.Header{"Cookie": {"a=1", "b=2"}, "X-Real-Ip": {"10.0.0.1"}, "Authorization": {"secret"}})
	if len(got) != 2 || len(got["Cookie"]) != 2 || got.Get("X-Real-Ip") != "10.0.0.1" {
		t.Errorf("Forwarded = %v, want Cookie and X-Real-Ip only", got)
	}
	if New(Config{}).Forwarded(http.Header{"Cookie": {"a"}}) != nil {
		t.Error("Forwarded with no header listed is not nil")
	}
}

// TestMaxInFlight: with every slot taken, a call fails as overloaded
// within its timeout, without calling the backend.
func TestMaxInFlight(t *testing.T) {
	called := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		_, _ = w.Write([]byte(`{"result": {}}`))
	}))
	defer srv.Close()
	c := New(Config{MaxInFlight: 2, Timeout: 100 * time.Millisecond})
	defer c.CloseIdleConnections()
	c.slots <- struct{}{} // two calls under way
	c.slots <- struct{}{}
	start := time.Now()
	_, err := c.RPC(context.Background(), srv.URL, nil, &RPCRequest{Method: "next"})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Reason != ReasonOverloaded || called {
		t.Errorf("call with no slot free: %v (backend called: %v), want overloaded", err, called)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("overloaded after %v, want the timeout (100ms)", d)
	}
	<-c.slots
	if _, err := c.RPC(context.Background(), srv.URL, nil, &RPCRequest{Method: "next"}); err != nil || !called {
		t.Errorf("call with a slot free: %v", err)
	}
}

func TestNoRedirectAndCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	c := New(Config{})
	defer c.CloseIdleConnections()
	_, err := c.Publish(context.Background(), srv.URL, nil, &PublishRequest{Channel: "x"})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Reason != ReasonStatus || ue.Message != "backend answered HTTP 302" {
		t.Errorf("redirect: %v, want status 302", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Publish(ctx, srv.URL, nil, &PublishRequest{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", err)
	}
}
