package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDefaultURL(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "http://127.0.0.1:8080/healthz"},
		{map[string]string{"REDCAST_ADDR": ":9000"}, "http://127.0.0.1:9000/healthz"},
		{map[string]string{"REDCAST_ADDR": "0.0.0.0:8443", "REDCAST_TLS_CERT": "/tls/cert.pem"}, "https://127.0.0.1:8443/healthz"},
		{map[string]string{"REDCAST_ADDR": "nonsense"}, "http://127.0.0.1:8080/healthz"},
	} {
		if got := defaultURL(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("defaultURL(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	if err := check(srv.URL + "/healthz"); err != nil {
		t.Errorf("check of a healthy server: %v", err)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := check(srv.URL + "/healthz"); err == nil {
		t.Error("check of a server answering 503 passed")
	}
	srv.Close()
	if err := check(srv.URL + "/healthz"); err == nil {
		t.Error("check of a closed port passed")
	}
}
