package redcast

import (
	"context"
	"fmt"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/protocol"
)

// This file is revocation: the backend revokes a token by its jti,
// invalidates a user's tokens issued before some time, or blocks a user
// (nodeapi's RevokeToken, InvalidateUserTokens, BlockUser). What it
// revokes is kept in the node's broker.RevocationStore (Redis: shared by
// every node and durable; memory: this node's) and checked whenever a
// token is presented: on connect, refresh and subscribe with a
// subscription token (admit). The connections already admitted are closed
// by a control request to every node (control.go), with 3510 or 3511.
//
// No connection escapes both: admit records the token it checks in the
// client (under Client.mu) before it reads the store, and the backend's
// call writes the store before it sends the control request. So either
// the read sees the revocation, or the control request, which comes after
// it, finds the token in the client. A control request that finds the
// token still being checked marks the check instead of closing the
// connection: a check that refuses the token leaves the connection open
// (it was never admitted with it, and gets 114 or 107), one that admits it
// closes the connection as the request would have.

// Control operations of revocation (see control).
const (
	opRevokeToken = "revoke_token"
	opInvalidate  = "invalidate_user_tokens"
	opBlock       = "block_user"
)

// MaxTokenIDLength is the longest token id (jti) the API revokes, in bytes.
const MaxTokenIDLength = 255

// initRevocations sets the node's revocation store: store when not nil,
// else the broker's when it keeps one (both of redcast's do), else one in
// memory.
func (n *Node) initRevocations(store broker.RevocationStore) {
	if store == nil {
		store, _ = n.broker.(broker.RevocationStore)
	}
	if store == nil {
		store = memory.NewRevocations()
	}
	n.revocations = store
}

// tokenRefs are the tokens a connection was admitted with, by what they
// admitted: "" for the connection token (the latest, after refreshes), a
// channel name for a subscription token. Guarded by Client.mu.
type tokenRefs map[string]auth.TokenRef

// tokenCheck is a token that admit is checking against the store. A
// revocation control request that names it meanwhile sets revoked (under
// Client.mu).
type tokenCheck struct {
	ref     auth.TokenRef
	revoked *protocol.Disconnect
}

// admit checks the token ref of a client's credentials (key "") or of its
// subscription token for a channel (key the channel) against the node's
// revocations, and records it in the client as being checked before it
// reads the store (see the top of this file); an admitted token replaces
// the key's. A refused token is not kept. refused is the error a revoked
// token gets (114 for connection tokens, 107 for subscription tokens); an
// unreachable store gives 112. When a revocation control request named
// the token during the check and the check still admitted it, the client
// is closed as the request would have closed it.
func (c *Client) admit(key string, ref auth.TokenRef, refused *protocol.Error) error {
	check := &tokenCheck{ref: ref}
	c.mu.Lock()
	if c.checks == nil {
		c.checks = make(map[*tokenCheck]struct{})
	}
	c.checks[check] = struct{}{}
	c.mu.Unlock()
	err := c.node.checkToken(c.ctx, ref, refused)
	c.mu.Lock()
	delete(c.checks, check)
	if err == nil {
		if c.tokens == nil {
			c.tokens = make(tokenRefs)
		}
		c.pruneTokensLocked()
		c.tokens[key] = ref
	}
	revoked := check.revoked
	c.mu.Unlock()
	if err == nil && revoked != nil {
		c.Disconnect(*revoked)
	}
	return err
}

// admitSubscription admits the subscription token a client sent to
// subscribe to ch (see admit); a token that is not a JWT was refused
// already, or is not needed.
func (c *Client) admitSubscription(ch, token string) error {
	if token == "" {
		return nil
	}
	ref, ok := auth.ReadTokenRef(token)
	if !ok {
		return nil
	}
	return c.admit(ch, ref, protocol.ErrPermissionDenied)
}

// pruneTokensLocked forgets the subscription tokens of channels the client
// left, once it holds more than twice MaxChannels: the map stays bounded
// however many channels come and go.
func (c *Client) pruneTokensLocked() {
	if len(c.tokens) <= 2*c.node.cfg.MaxChannels {
		return
	}
	for key := range c.tokens {
		if key != "" && c.subs[key] == nil {
			delete(c.tokens, key)
		}
	}
}

// checkToken returns refused, with the reason, when the store refuses ref.
func (n *Node) checkToken(ctx context.Context, ref auth.TokenRef, refused *protocol.Error) error {
	st, err := n.revocations.TokenStatus(ctx, ref.User, ref.ID)
	if err != nil {
		n.metrics.BrokerErrors.WithLabelValues("revocations").Inc()
		return fmt.Errorf("redcast: check revocations: %w", err)
	}
	switch {
	case st.Blocked:
		return refused.WithMessage("user blocked")
	case st.Revoked:
		return refused.WithMessage("token revoked")
	case st.Refuses(ref.IssuedAt):
		return refused.WithMessage("token revoked: the user's tokens issued before %s are invalid", st.IssuedBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// handleRevocation closes this node's connections that a revocation
// control request names; it reports whether c was one.
func (n *Node) handleRevocation(c control) bool {
	var match func(cl *Client) (protocol.Disconnect, bool)
	switch c.Op {
	case opRevokeToken:
		if c.JTI == "" {
			return true
		}
		match = func(cl *Client) (protocol.Disconnect, bool) {
			d := protocol.DisconnectTokenRevoked
			return d, cl.holdsToken(d, func(r auth.TokenRef) bool { return r.ID == c.JTI })
		}
	case opInvalidate:
		before := time.UnixMilli(c.Before)
		match = func(cl *Client) (protocol.Disconnect, bool) {
			d := protocol.DisconnectTokenRevoked
			return d, cl.holdsToken(d, func(r auth.TokenRef) bool {
				return r.User == c.User && r.IssuedAt.Before(before)
			})
		}
	case opBlock:
		match = func(cl *Client) (protocol.Disconnect, bool) {
			d := protocol.DisconnectUserBlocked
			return d, cl.user() == c.User || cl.holdsToken(d, func(r auth.TokenRef) bool { return r.User == c.User })
		}
	default:
		return false
	}
	if c.Op != opRevokeToken && c.User == "" {
		return true
	}
	for _, cl := range n.clientList() {
		if d, ok := match(cl); ok {
			cl.Disconnect(d)
		}
	}
	return true
}

// holdsToken reports whether the client was admitted with a token that
// match accepts; the checks still running of tokens that match accepts
// are marked to close the client with d if they admit them (see admit).
func (c *Client) holdsToken(d protocol.Disconnect, match func(auth.TokenRef) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for check := range c.checks {
		if match(check.ref) {
			check.revoked = &d
		}
	}
	for _, r := range c.tokens {
		if match(r) {
			return true
		}
	}
	return false
}

// RevokeToken revokes the token with id jti (its jti claim) on every node:
// new connections, refreshes and subscriptions with it are refused (114,
// or 107 for a subscription token) and connections admitted with it are
// closed with 3510. The revocation is kept until expireAt (the token's
// exp) plus the verifier's leeway; a zero expireAt keeps it forever.
// Errors: 101 (bad jti), 112.
func (n *Node) RevokeToken(ctx context.Context, jti string, expireAt time.Time) error {
	switch {
	case jti == "":
		return protocol.ErrBadRequest.WithMessage("jti is empty")
	case len(jti) > MaxTokenIDLength:
		return protocol.ErrBadRequest.WithMessage("jti longer than %d bytes", MaxTokenIDLength)
	}
	if err := n.revocations.RevokeToken(ctx, jti, n.revocationUntil(expireAt)); err != nil {
		return fmt.Errorf("redcast: revoke token: %w", err)
	}
	return n.announceRevocation(ctx, control{Op: opRevokeToken, JTI: jti})
}

// InvalidateUserTokens revokes, on every node, every token of user issued
// (iat) before issuedBefore, tokens without iat included, as RevokeToken
// revokes one; until expireAt (plus the leeway; zero: forever). Errors:
// 101, 112.
func (n *Node) InvalidateUserTokens(ctx context.Context, user string, issuedBefore, expireAt time.Time) error {
	if err := checkAPIUser(user); err != nil {
		return err
	}
	if issuedBefore.IsZero() {
		return protocol.ErrBadRequest.WithMessage("issued_before is missing")
	}
	if err := n.revocations.InvalidateUserTokens(ctx, user, issuedBefore, n.revocationUntil(expireAt)); err != nil {
		return fmt.Errorf("redcast: invalidate user tokens: %w", err)
	}
	return n.announceRevocation(ctx, control{Op: opInvalidate, User: user, Before: issuedBefore.UnixMilli()})
}

// BlockUser blocks a user on every node until UnblockUser: the user's
// connections are closed with 3511 and new ones, refreshes and
// subscription tokens refused. Errors: 101, 112.
func (n *Node) BlockUser(ctx context.Context, user string) error {
	if err := checkAPIUser(user); err != nil {
		return err
	}
	if err := n.revocations.BlockUser(ctx, user); err != nil {
		return fmt.Errorf("redcast: block user: %w", err)
	}
	return n.announceRevocation(ctx, control{Op: opBlock, User: user})
}

// UnblockUser lifts a block: the user may connect again. Errors: 101, 112.
func (n *Node) UnblockUser(ctx context.Context, user string) error {
	if err := checkAPIUser(user); err != nil {
		return err
	}
	if err := n.revocations.UnblockUser(ctx, user); err != nil {
		return fmt.Errorf("redcast: unblock user: %w", err)
	}
	return nil
}

// revocationUntil is how long a revocation of a token expiring at
// expireAt is kept: past its exp by the leeway tokens are accepted with.
func (n *Node) revocationUntil(expireAt time.Time) time.Time {
	if expireAt.IsZero() {
		return time.Time{}
	}
	if n.cfg.Verifier != nil {
		expireAt = expireAt.Add(n.cfg.Verifier.Leeway())
	}
	return expireAt
}

func checkAPIUser(user string) error {
	switch {
	case user == "":
		return protocol.ErrBadRequest.WithMessage("user is empty")
	case len(user) > auth.MaxUserSize:
		return protocol.ErrBadRequest.WithMessage("user longer than %d bytes", auth.MaxUserSize)
	}
	return nil
}

// A node whose link to the broker was down when a revocation was made
// missed the control request that closes its connections. So after its
// broker reconnected, it checks every token its connections hold (and
// every user, for blocks) against the store: the store has what the
// control requests carried. Brokers that can tell (the Redis one) count
// their reconnects; with no count (memory) there is nothing to miss.

// reconnectCheckInterval is how often the node looks whether its broker
// reconnected.
const reconnectCheckInterval = 250 * time.Millisecond

// reconnectCounter is implemented by brokers that count their lost and
// reopened delivery links, and report when they are back.
type reconnectCounter interface {
	Reconnects() uint64
	Ready() bool
}

// watchReconnects rechecks the node's connections (recheckTokens) once the
// broker is ready after each reconnect, until ctx ends; a recheck that
// could not read the store is tried again.
func (n *Node) watchReconnects(ctx context.Context) {
	rc, ok := n.broker.(reconnectCounter)
	if !ok {
		return
	}
	t := time.NewTicker(reconnectCheckInterval)
	defer t.Stop()
	seen, pending := rc.Reconnects(), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if cur := rc.Reconnects(); cur != seen {
			seen, pending = cur, true
		}
		// The broker counts a reconnect when the link goes down and is
		// not ready until it is back: ready now means back since.
		if pending && rc.Ready() {
			pending = !n.recheckTokens(ctx)
		}
	}
}

// recheckTokens closes the connections whose tokens or user the store
// refuses now. It reports whether it could read everything it needed.
func (n *Node) recheckTokens(ctx context.Context) bool {
	complete := true
	for _, cl := range n.clientList() {
		refs := cl.tokenRefs()
		// A connection with a user but no token (admitted by other means)
		// can only be blocked.
		blockOnly := len(refs) == 0
		if user := cl.user(); blockOnly && user != "" {
			refs = append(refs, auth.TokenRef{User: user})
		}
		for _, r := range refs {
			st, err := n.revocations.TokenStatus(ctx, r.User, r.ID)
			if err != nil {
				if ctx.Err() != nil {
					return false
				}
				complete = false
				continue
			}
			if st.Blocked || (!blockOnly && st.Refuses(r.IssuedAt)) {
				d := protocol.DisconnectTokenRevoked
				if st.Blocked {
					d = protocol.DisconnectUserBlocked
				}
				cl.Disconnect(d)
				break
			}
		}
	}
	if !complete {
		n.log.Warn("revocations: could not recheck every connection after a broker reconnect; trying again")
	}
	return complete
}

// tokenRefs returns the tokens the client was admitted with, and those
// it is being admitted with.
func (c *Client) tokenRefs() []auth.TokenRef {
	c.mu.Lock()
	defer c.mu.Unlock()
	refs := make([]auth.TokenRef, 0, len(c.tokens)+len(c.checks))
	for _, r := range c.tokens {
		refs = append(refs, r)
	}
	for check := range c.checks {
		refs = append(refs, check.ref)
	}
	return refs
}

// announceRevocation asks every node to close what a revocation stored
// a moment ago refuses. It outlives the caller's ctx (an API client that
// gives up after the store was written must not leave connections open),
// within cleanupTimeout.
func (n *Node) announceRevocation(ctx context.Context, c control) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return n.publishControl(ctx, c)
}
