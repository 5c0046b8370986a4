package redcast

import (
	"encoding/json"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/proxy"
)

// tokenExpiry tracks a connection token's lifetime: when it expires the
// client gets a refresh push and RefreshGrace to send a fresh token; until
// then its commands (but refresh and ping) are refused with 115, and after
// it the client is disconnected with 3006. Guarded by Client.mu.
type tokenExpiry struct {
	timer   *time.Timer
	expired bool
	gen     int // ignores timers of a replaced token
	// atReply: the token is past its exp (accepted within the leeway),
	// and the refresh push it calls for waits for the connect reply
	// (ConnectReplied), which it must follow.
	atReply bool
}

func (e *tokenExpiry) stop() {
	if e.timer != nil {
		e.timer.Stop()
	}
}

// credentials returns the client's credentials, nil when anonymous.
func (c *Client) credentials() *auth.Credentials {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.creds
}

func (c *Client) tokenExpired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expiry.expired
}

// Connect authenticates the client with its connection token (when it sent
// one), through the connect proxy (when the node has one, see proxy.go), or
// as an anonymous client with a display name.
func (c *Client) Connect(p protocol.ConnectParams) (*protocol.ConnectResult, error) {
	if len(p.Name) > protocol.MaxNameLength {
		return nil, protocol.ErrBadRequest.WithMessage("name longer than %d bytes", protocol.MaxNameLength)
	}
	// Refused before anything is verified or admitted: a second connect
	// must neither cost a verify and a store read nor leave its token
	// recorded as the connection's (which revocations go by).
	if c.isConnected() {
		return nil, protocol.ErrAlreadyConnected
	}
	var (
		creds *auth.Credentials
		px    *proxy.ConnectResult // the connect proxy's answer
	)
	var err error
	switch {
	case p.Token != "" && c.node.cfg.Verifier == nil:
		return nil, protocol.ErrUnauthorized.WithMessage("this server accepts no tokens")
	case p.Token != "":
		creds, err = c.node.cfg.Verifier.VerifyConnect(p.Token)
	case c.node.cfg.Proxy.ConnectURL != "" && c.node.cfg.Proxy.Backend != nil:
		creds, px, err = c.connectProxied(p)
	case c.node.cfg.RequireToken:
		return nil, protocol.ErrUnauthorized.WithMessage("a connection token is required")
	}
	if err != nil {
		return nil, err
	}
	// A user, whether a token or the backend vouches for it now, must not
	// be reserved, and is admitted: a blocked user, or one whose tokens
	// were invalidated later, is refused and closed. An anonymous client
	// (no credentials) has nothing to revoke.
	if creds != nil {
		if err = c.node.checkUser(creds.User); err != nil {
			return nil, err
		}
		if err = c.admit("", creds.Ref(), protocol.ErrUnauthorized); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected {
		return nil, protocol.ErrAlreadyConnected
	}
	res := &protocol.ConnectResult{
		Client:  c.ID(),
		Version: Version,
		PingMS:  c.node.cfg.PingInterval.Milliseconds(),
		Ping:    int((c.node.cfg.PingInterval + time.Second - 1) / time.Second),
	}
	if px != nil {
		c.px.proxied, c.px.meta, c.px.channels = creds != nil, px.Meta, px.Channels
		res.Data = px.Data
	}
	if creds != nil {
		c.creds = creds
		c.info.User, c.info.Info = creds.User, creds.Info
		res.User = creds.User
		res.Expiry = c.armExpiryLocked(creds.ExpiresAt, true)
	} else if px != nil && len(px.Info) > 0 {
		c.info.Info = px.Info // an anonymous client the backend named
	} else if p.Name != "" {
		info, err := json.Marshal(map[string]string{"name": p.Name})
		if err != nil {
			return nil, protocol.ErrBadRequest.WithMessage("bad name: %v", err)
		}
		c.info.Info = info
	}
	c.connected = true
	c.node.connectionChanged(*c.info, true, 0)
	if c.connectTime != nil {
		c.connectTime.Stop()
		c.connectTime = nil // an idle connection keeps no timer it is done with
	}
	return res, nil
}

// ConnectReplied tells the client that the reply to its connect was
// queued: what must follow the reply may go (the refresh push of a token
// accepted past its exp within the verifier's leeway). Transports call it
// right after queuing the reply.
func (c *Client) ConnectReplied() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry.atReply && c.expiry.timer != nil {
		c.expiry.atReply = false
		c.expiry.timer.Reset(0)
	}
}

// Refresh replaces the client's connection token with a fresh one of the
// same user, before or after the old one expired.
func (c *Client) Refresh(p protocol.RefreshParams) (*protocol.RefreshResult, error) {
	cur := c.credentials()
	if cur == nil || c.node.cfg.Verifier == nil {
		return nil, protocol.ErrBadRequest.WithMessage("refresh is for clients that connected with a token")
	}
	creds, err := c.node.cfg.Verifier.VerifyRefresh(p.Token, cur)
	if err != nil {
		return nil, err
	}
	if err := c.admit("", creds.Ref(), protocol.ErrUnauthorized); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.creds = creds
	c.px.proxied = false // the token's expiry rules from now on, not the backend's
	exp := c.armExpiryLocked(creds.ExpiresAt, false)
	return &exp, nil
}

// armExpiryLocked (re)starts the expiry timer for a token expiring at
// (zero: never) and returns what the client is told about it.
//
// connecting says the token comes with a connect, whose reply the refresh
// push must follow: a token already past its exp (accepted within the
// verifier's leeway) then waits for ConnectReplied, or a second should the
// caller not call it.
func (c *Client) armExpiryLocked(at time.Time, connecting bool) protocol.Expiry {
	c.expiry.stop()
	c.expiry.expired, c.expiry.atReply = false, false
	c.expiry.gen++
	if at.IsZero() {
		return protocol.Expiry{}
	}
	gen := c.expiry.gen
	ttl := time.Until(at)
	fire := ttl
	if c.px.proxied && c.node.cfg.Proxy.RefreshURL != "" {
		fire -= min(ttl/4, refreshLead) // the backend extends it before it expires
	}
	if fire <= 0 && connecting && !c.px.proxied {
		c.expiry.atReply, fire = true, time.Second
	}
	c.expiry.timer = time.AfterFunc(max(fire, 0), func() { c.tokenTimer(gen) })
	// Seconds left, rounded up: 0 (and omitted) only for a token already
	// past its exp, accepted within the verifier's leeway.
	return protocol.Expiry{Expires: at.Unix(), TTL: int64(max(ttl+time.Second-1, 0) / time.Second)}
}

// tokenTimer fires when the token expires (the client is asked to refresh)
// and again when the grace period ends (the client is disconnected).
func (c *Client) tokenTimer(gen int) {
	c.mu.Lock()
	if gen != c.expiry.gen || c.closed {
		c.mu.Unlock()
		return
	}
	if c.px.proxied {
		c.mu.Unlock()
		c.refreshProxied(gen) // the backend decides, not a token
		return
	}
	if c.expiry.expired {
		c.mu.Unlock()
		c.Disconnect(protocol.DisconnectTokenExpired)
		return
	}
	c.expiry.expired, c.expiry.atReply = true, false
	c.expiry.timer = time.AfterFunc(c.node.cfg.RefreshGrace, func() { c.tokenTimer(gen) })
	c.mu.Unlock()
	if push, err := protocol.AppendPush(nil, &protocol.Push{Type: protocol.PushRefresh, Reason: "token expired"}); err == nil {
		c.send(push)
	}
}
