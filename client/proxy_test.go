package client

import (
	"testing"

	"github.com/redcast/redcast/internal/testproxy"
)

// proxy is a testproxy.Proxy with the full-protocol URL through it.
type proxy struct{ *testproxy.Proxy }

func newProxy(t *testing.T, target string) proxy { return proxy{testproxy.New(t, target)} }

// url is the full-protocol URL through the proxy.
func (p proxy) url() string { return "ws://" + p.Addr() + "/connection/websocket" }

func (p proxy) cut()                  { p.Cut() }
func (p proxy) setRefuse(refuse bool) { p.SetRefuse(refuse) }
