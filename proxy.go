package redcast

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/proxy"
)

// This file is the node's side of the proxies to the application's backend
// (package proxy makes the HTTP calls; docs/backend.md is the user's
// guide). Every call is made from the goroutine of the client it is for
// (its read goroutine, or its expiry timer for refresh), holding no lock:
// a slow backend delays that client's commands only.

// Backend is what the node asks the application's backend. *proxy.Client
// implements it over HTTP.
type Backend interface {
	Connect(ctx context.Context, url string, h http.Header, req *proxy.ConnectRequest) (*proxy.ConnectResult, error)
	Refresh(ctx context.Context, url string, h http.Header, req *proxy.RefreshRequest) (*proxy.RefreshResult, error)
	Subscribe(ctx context.Context, url string, h http.Header, req *proxy.SubscribeRequest) (*proxy.SubscribeResult, error)
	Publish(ctx context.Context, url string, h http.Header, req *proxy.PublishRequest) (*proxy.PublishResult, error)
	RPC(ctx context.Context, url string, h http.Header, req *proxy.RPCRequest) (*proxy.RPCResult, error)
	// Forwarded returns the headers of a client's request that calls
	// forward.
	Forwarded(h http.Header) http.Header
}

var _ Backend = (*proxy.Client)(nil)

// ProxyConfig says which of a client's actions the node asks the backend
// about (see docs/backend.md). Empty URLs ask nothing.
type ProxyConfig struct {
	// Backend makes the calls; nil turns every proxy off.
	Backend Backend
	// ConnectURL authenticates clients that connect without a token.
	ConnectURL string
	// RefreshURL extends the connections ConnectURL authenticated with an
	// expiry, shortly before they expire. Without it they end at expiry
	// with 3006.
	RefreshURL string
	// SubscribeURL and PublishURL decide the subscribes and publishes of
	// clients in every namespace that does not name a URL of its own or
	// turn them off (auth.Namespace.SubscribeProxy, PublishProxy).
	SubscribeURL string
	PublishURL   string
	// RPCURL answers the rpc command; without it rpc gets error 111.
	RPCURL string
}

// proxyConn is what a client keeps for its calls to the backend.
type proxyConn struct {
	// header and transport are set when the client is made, then only read.
	header    http.Header
	transport string
	// proxied says that the connect proxy authenticated the client, and
	// meta is what it gave to send back (Client.mu).
	proxied bool
	meta    json.RawMessage
	// channels are the server-side subscriptions the connect proxy gave,
	// made after the connect reply (read goroutine only).
	channels []string
}

// ForwardedHeaders returns the headers of a client's request (a WebSocket
// upgrade, an event stream) that calls to the backend forward: a transport
// passes them in ClientOptions.Header. Nil when no proxy is configured.
func (n *Node) ForwardedHeaders(h http.Header) http.Header {
	if n.cfg.Proxy.Backend == nil {
		return nil
	}
	return n.cfg.Proxy.Backend.Forwarded(h)
}

// proxyURL returns the URL a namespace's setting (one of
// auth.Namespace.SubscribeProxy, PublishProxy) resolves to, with def the
// node's: "" when there is none or the namespace turns it off.
func (n *Node) proxyURL(setting, def string) string {
	switch {
	case n.cfg.Proxy.Backend == nil || setting == auth.ProxyOff:
		return ""
	case setting != "":
		return setting
	}
	return def
}

// subscribeProxy and publishProxy return the URL that decides a client's
// subscribe to (publish to) channel ch of namespace ns, "" when the
// namespace's policy does. User-limited channels (a '#' in the name) are
// always the policy's: their users need nobody's permission.
func (n *Node) subscribeProxy(ns auth.Namespace, ch string) string {
	if strings.Contains(ch, "#") {
		return ""
	}
	return n.proxyURL(ns.SubscribeProxy, n.cfg.Proxy.SubscribeURL)
}

func (n *Node) publishProxy(ns auth.Namespace, ch string) string {
	if strings.Contains(ch, "#") {
		return ""
	}
	return n.proxyURL(ns.PublishProxy, n.cfg.Proxy.PublishURL)
}

// base is the start of every request of the client.
func (c *Client) proxyBase() proxy.Base {
	return proxy.Base{Client: c.ID(), Transport: c.px.transport, Protocol: "json", Encoding: "json"}
}

// proxyMeta returns the client's user and the meta the connect proxy gave.
func (c *Client) proxyMeta() (user string, meta json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.User, c.px.meta
}

// proxied counts a call of kind that started at start and ended with err,
// and returns err as the client is shown it.
func (c *Client) proxied(kind string, start time.Time, err error) error {
	m := c.node.metrics
	m.ProxyDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err == nil {
		m.ProxyCalls.WithLabelValues(kind, "ok").Inc()
		return nil
	}
	perr, result := backendError(err)
	m.ProxyCalls.WithLabelValues(kind, result).Inc()
	if ue, ok := errors.AsType[*proxy.UnavailableError](err); ok {
		c.node.log.Warn("backend call failed", "kind", kind, "client", c.ID(), "reason", ue.Reason, "err", err)
	}
	return perr
}

// connectProxied asks the backend who the client is. It returns the
// credentials (nil: anonymous), and the rest of the backend's result.
func (c *Client) connectProxied(p protocol.ConnectParams) (*auth.Credentials, *proxy.ConnectResult, error) {
	start := time.Now()
	res, err := c.node.cfg.Proxy.Backend.Connect(c.ctx, c.node.cfg.Proxy.ConnectURL, c.px.header,
		&proxy.ConnectRequest{Base: c.proxyBase(), Name: p.Name, Data: p.Data})
	if err = c.proxied("connect", start, err); err != nil {
		return nil, nil, err
	}
	if len(res.User) > auth.MaxUserSize || len(res.Info) > auth.MaxInfoSize {
		return nil, nil, protocol.ErrBackendUnavailable.WithMessage("backend gave a user longer than %d bytes or info longer than %d",
			auth.MaxUserSize, auth.MaxInfoSize)
	}
	// meta is kept for the connection's life, data goes to the client,
	// and each channel is a subscription: bounded like the client's own.
	switch {
	case len(res.Meta) > MaxProxyMetaSize:
		return nil, nil, protocol.ErrBackendUnavailable.WithMessage("backend gave meta longer than %d bytes", MaxProxyMetaSize)
	case len(res.Data) > c.node.cfg.MaxDataSize:
		return nil, nil, protocol.ErrBackendUnavailable.WithMessage("backend gave data longer than %d bytes", c.node.cfg.MaxDataSize)
	case len(res.Channels) > c.node.cfg.MaxChannels:
		return nil, nil, protocol.ErrBackendUnavailable.WithMessage("backend gave %d channels, a connection holds at most %d", len(res.Channels), c.node.cfg.MaxChannels)
	}
	for _, ch := range res.Channels {
		if _, err := c.node.policy.Namespace(ch); err != nil {
			return nil, nil, err
		}
	}
	if res.User == "" {
		if c.node.cfg.RequireToken {
			return nil, nil, protocol.ErrUnauthorized.WithMessage("the backend gave no user")
		}
		return nil, res, nil
	}
	creds := &auth.Credentials{User: res.User, Info: res.Info, IssuedAt: time.Now()}
	if res.ExpireAt > 0 {
		creds.ExpiresAt = time.Unix(res.ExpireAt, 0)
		if !creds.ExpiresAt.After(time.Now()) {
			return nil, nil, protocol.ErrTokenExpired.WithMessage("the backend gave an expiry in the past")
		}
	}
	return creds, res, nil
}

// MaxProxyMetaSize is the most bytes of meta a connect or refresh proxy
// may give a connection (kept for its life, sent back with its calls).
const MaxProxyMetaSize = 4 << 10

// refreshLead is how long before a proxied connection expires the refresh
// proxy is asked (at most; a quarter of the time left when that is less).
const refreshLead = 10 * time.Second

// refreshProxied asks the backend whether the client's connection lives
// on (on the expiry timer's goroutine, holding no lock) and re-arms the
// timer of generation gen, or ends the connection.
func (c *Client) refreshProxied(gen int) {
	url := c.node.cfg.Proxy.RefreshURL
	if url == "" {
		c.Disconnect(protocol.DisconnectTokenExpired)
		return
	}
	user, meta := c.proxyMeta()
	start := time.Now()
	res, err := c.node.cfg.Proxy.Backend.Refresh(c.ctx, url, c.px.header,
		&proxy.RefreshRequest{Base: c.proxyBase(), User: user, Meta: meta})
	err = c.proxied("refresh", start, err)
	var at time.Time
	switch {
	case c.ctx.Err() != nil:
		return
	case err != nil:
		if d, ok := errors.AsType[protocol.Disconnect](err); ok {
			c.Disconnect(d)
			return
		}
		if !errors.Is(err, protocol.ErrBackendUnavailable) {
			c.Disconnect(protocol.DisconnectTokenExpired) // the backend refused
			return
		}
		at = time.Now().Add(time.Minute) // as Centrifugo: try again in a minute
	case res.Expired:
		c.Disconnect(protocol.DisconnectTokenExpired)
		return
	case res.ExpireAt > 0:
		at = time.Unix(res.ExpireAt, 0)
		if !at.After(time.Now()) {
			// An expiry in the past would re-arm the timer at once and
			// ask the backend again in a loop: the connection is over.
			c.Disconnect(protocol.DisconnectTokenExpired)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.expiry.gen || c.closed {
		return
	}
	if res != nil && res.Meta != nil && len(res.Meta) <= MaxProxyMetaSize {
		c.px.meta = res.Meta
	}
	creds := *c.creds
	creds.ExpiresAt = at
	c.creds = &creds
	c.armExpiryLocked(at, false)
}

// subscribeProxied asks the backend whether the client may subscribe.
func (c *Client) subscribeProxied(url string, p protocol.SubscribeParams) error {
	user, meta := c.proxyMeta()
	start := time.Now()
	_, err := c.node.cfg.Proxy.Backend.Subscribe(c.ctx, url, c.px.header,
		&proxy.SubscribeRequest{Base: c.proxyBase(), User: user, Channel: p.Channel, Meta: meta})
	return c.proxied("subscribe", start, err)
}

// publishProxied asks the backend whether the client may publish data to
// ch, and returns the data to publish: the backend's when it gave some.
func (c *Client) publishProxied(url, ch string, data json.RawMessage) (json.RawMessage, error) {
	user, meta := c.proxyMeta()
	start := time.Now()
	res, err := c.node.cfg.Proxy.Backend.Publish(c.ctx, url, c.px.header,
		&proxy.PublishRequest{Base: c.proxyBase(), User: user, Channel: ch, Data: data, Meta: meta})
	if err = c.proxied("publish", start, err); err != nil {
		return nil, err
	}
	if res.Data != nil {
		if err := c.node.checkData(res.Data); err != nil {
			perr, _ := ProtocolError(err)
			return nil, protocol.ErrBackendUnavailable.WithMessage("backend rewrote the data badly: %s", perr.Message)
		}
		return res.Data, nil
	}
	return data, nil
}

// RPC answers an rpc command through the backend. Errors: 101 (method
// missing or too long, data not JSON), 110, 111 (no rpc proxy), 117, and
// the backend's.
func (c *Client) RPC(p protocol.RPCParams) (*protocol.RPCResult, error) {
	url := c.node.cfg.Proxy.RPCURL
	switch {
	case url == "" || c.node.cfg.Proxy.Backend == nil:
		return nil, protocol.ErrNotAvailable.WithMessage("rpc is not configured on this server")
	case len(p.Method) > protocol.MaxRPCMethodLength:
		return nil, protocol.ErrBadRequest.WithMessage("rpc method longer than %d bytes", protocol.MaxRPCMethodLength)
	case len(p.Data) > c.node.cfg.MaxDataSize:
		return nil, protocol.ErrDataTooLarge.WithMessage("data is %d bytes, the limit is %d", len(p.Data), c.node.cfg.MaxDataSize)
	case len(p.Data) > 0 && !json.Valid(p.Data):
		return nil, protocol.ErrBadRequest.WithMessage("data is not valid JSON")
	}
	user, meta := c.proxyMeta()
	start := time.Now()
	res, err := c.node.cfg.Proxy.Backend.RPC(c.ctx, url, c.px.header,
		&proxy.RPCRequest{Base: c.proxyBase(), User: user, Method: p.Method, Data: p.Data, Meta: meta})
	if err = c.proxied("rpc", start, err); err != nil {
		return nil, err
	}
	return &protocol.RPCResult{Data: res.Data}, nil
}

// subscribeServerSide makes the subscriptions the connect proxy gave, after
// the connect reply: each is announced with a subscribe push before its
// publications. One that fails closes the connection (3007), so that the
// client reconnects rather than miss a channel.
func (c *Client) subscribeServerSide() {
	chs := c.px.channels
	c.px.channels = nil
	for _, ch := range chs {
		err := c.subscribe(protocol.SubscribeParams{Channel: ch}, func(res *protocol.SubscribeResult) {
			if push, err := protocol.AppendPush(nil, &protocol.Push{Type: protocol.PushSubscribe, Channel: ch, Sub: res}); err == nil {
				c.send(push)
			}
		}, subscribeHow{authorized: true})
		if err != nil && !errors.Is(err, protocol.ErrAlreadySubscribed) {
			c.node.log.Warn("server-side subscribe failed", "client", c.ID(), "channel", ch, "err", err)
			c.Disconnect(protocol.DisconnectForcedReconnect)
			return
		}
	}
}

// centrifugoCodes maps the error codes Centrifugo defines (below 400) to
// redcast's, so that a backend written for Centrifugo is understood.
var centrifugoCodes = map[uint32]*protocol.Error{
	100: protocol.ErrInternal,
	101: protocol.ErrUnauthorized,
	102: protocol.ErrUnknownNamespace,
	103: protocol.ErrPermissionDenied,
	104: protocol.ErrUnknownMethod,
	105: protocol.ErrAlreadySubscribed,
	106: protocol.ErrLimitExceeded,
	107: protocol.ErrBadRequest,
	108: protocol.ErrNotAvailable,
	109: protocol.ErrTokenExpired,
	110: protocol.ErrTokenExpired,
	111: protocol.ErrTooManyRequests,
	112: protocol.ErrPositionExpired,
}

// maxCloseReason is the longest reason a WebSocket close frame carries.
const maxCloseReason = 123

// backendError returns what the client is shown for a failed call, and the
// result label metrics count it under: the backend's error (codes 400 and
// up as they are, Centrifugo's below 400 as redcast's equivalent, others as
// 107), its disconnect (codes 4000-4999 as they are, others as 3504: a
// backend cannot pass for one of redcast's own closes), or
// 117 when the backend did not answer.
func backendError(err error) (error, string) {
	if e, ok := errors.AsType[*proxy.Error](err); ok {
		switch known := centrifugoCodes[e.Code]; {
		case e.Code >= 400:
			return &protocol.Error{Code: e.Code, Message: e.Message}, "error"
		case known != nil && e.Message == "":
			return known, "error"
		case known != nil:
			return known.WithMessage("%s", e.Message), "error"
		case e.Message == "":
			return protocol.ErrPermissionDenied, "error"
		}
		return protocol.ErrPermissionDenied.WithMessage("%s", e.Message), "error"
	}
	if d, ok := errors.AsType[*proxy.Disconnect](err); ok {
		out := protocol.Disconnect{Code: uint16(d.Code), Reason: proxy.Cut(d.Reason, maxCloseReason)}
		if d.Code < 4000 || d.Code > 4999 {
			out.Code = protocol.DisconnectForced.Code
		}
		if out.Reason == "" {
			out.Reason = protocol.DisconnectForced.Reason
		}
		return out, "disconnect"
	}
	if ue, ok := errors.AsType[*proxy.UnavailableError](err); ok {
		return protocol.ErrBackendUnavailable.WithMessage("%s", ue.Message), string(ue.Reason)
	}
	// The client went away during the call: nobody reads the answer.
	return protocol.ErrInternal.WithMessage("connection closed"), "cancelled"
}
