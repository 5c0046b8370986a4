package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout     = time.Second
	DefaultMaxInFlight = 64
)

// Config configures a Client. The zero value means the defaults.
type Config struct {
	// Timeout bounds one call, from the wait for a free slot to the last
	// byte of the reply. Default DefaultTimeout.
	Timeout time.Duration
	// MaxInFlight bounds the calls under way at once (per node: one Client
	// serves all the node's connections); a call waits for a free slot
	// within its timeout. Default DefaultMaxInFlight.
	MaxInFlight int
	// Headers are the names of the headers of a client's request (its
	// WebSocket upgrade or event stream request) that are forwarded with
	// its calls, "Cookie" included when listed. Others never are.
	Headers []string
	// HTTPClient makes the calls; nil: a client of its own, which follows
	// no redirect.
	HTTPClient *http.Client
}

// Client calls the backend. It is safe for concurrent use.
type Client struct {
	timeout time.Duration
	headers []string // canonical names
	hc      *http.Client
	slots   chan struct{}
}

// New returns a Client of cfg.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	hc := cfg.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.MaxInFlight
		hc = &http.Client{
			Transport:     t,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	c := &Client{timeout: cfg.Timeout, hc: hc, slots: make(chan struct{}, cfg.MaxInFlight)}
	for _, h := range cfg.Headers {
		if h = strings.TrimSpace(h); h != "" {
			c.headers = append(c.headers, http.CanonicalHeaderKey(h))
		}
	}
	return c
}

// Forwarded returns the headers of h that calls forward (a copy), nil
// when there is none: what a transport keeps of a client's request.
func (c *Client) Forwarded(h http.Header) http.Header {
	var out http.Header
	for _, name := range c.headers {
		if v := h.Values(name); len(v) > 0 {
			if out == nil {
				out = make(http.Header, len(c.headers))
			}
			out[name] = append([]string(nil), v...)
		}
	}
	return out
}

// Connect asks the backend at url who a client is; header are the
// forwarded headers of the client's request.
func (c *Client) Connect(ctx context.Context, url string, header http.Header, req *ConnectRequest) (*ConnectResult, error) {
	return call[ConnectResult](ctx, c, url, header, req)
}

// Refresh asks whether a connection lives on.
func (c *Client) Refresh(ctx context.Context, url string, header http.Header, req *RefreshRequest) (*RefreshResult, error) {
	return call[RefreshResult](ctx, c, url, header, req)
}

// Subscribe asks whether a client may subscribe.
func (c *Client) Subscribe(ctx context.Context, url string, header http.Header, req *SubscribeRequest) (*SubscribeResult, error) {
	return call[SubscribeResult](ctx, c, url, header, req)
}

// Publish asks whether a client may publish, and what.
func (c *Client) Publish(ctx context.Context, url string, header http.Header, req *PublishRequest) (*PublishResult, error) {
	return call[PublishResult](ctx, c, url, header, req)
}

// RPC asks the backend to answer an rpc command.
func (c *Client) RPC(ctx context.Context, url string, header http.Header, req *RPCRequest) (*RPCResult, error) {
	return call[RPCResult](ctx, c, url, header, req)
}

// call POSTs req to url and decodes the reply. When ctx ends first (the
// client went away) it returns ctx's error, which is not the backend's
// fault.
func call[T Result](ctx context.Context, c *Client, url string, header http.Header, req any) (*T, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
	case <-tctx.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(ReasonOverloaded, nil, "too many backend calls under way")
	}
	defer func() { <-c.slots }()
	hr, err := http.NewRequestWithContext(tctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, unavailable(ReasonUnreachable, err, "backend address is not valid")
	}
	for name, v := range header {
		hr.Header[name] = v
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, c.failed(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // so that the connection may be reused
		return nil, unavailable(ReasonStatus, nil, "backend answered HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxReplySize+1))
	if err != nil {
		return nil, c.failed(ctx, err)
	}
	return Decode[T](data)
}

// failed classifies an error of the HTTP exchange.
func (c *Client) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return unavailable(ReasonTimeout, err, "backend did not answer within %v", c.timeout)
	}
	return unavailable(ReasonUnreachable, err, "backend unreachable")
}

// CloseIdleConnections closes the connections to the backend that no call
// uses: call it once the node that used the Client is shut down.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }
