package redcast

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// staleStore is a RevocationStore whose TokenStatus, while hold is set,
// reads the store as it is when called but answers only once the test
// lets it: a read that a revocation overtakes.
type staleStore struct {
	*memory.Revocations
	hold    atomic.Bool
	called  chan struct{}
	release chan struct{}
}

func (s *staleStore) TokenStatus(ctx context.Context, user, jti string) (broker.TokenStatus, error) {
	st, err := s.Revocations.TokenStatus(ctx, user, jti)
	if s.hold.Load() {
		s.called <- struct{}{}
		<-s.release
	}
	return st, err
}

// TestRevocationOvertakesAdmission: a token revoked while a connect with
// it is being checked (the check read the store before the revocation was
// written, and answers after every node handled the revocation) is still
// closed with 3510, never left connected; the next connect is refused.
func TestRevocationOvertakesAdmission(t *testing.T) {
	store := &staleStore{Revocations: memory.NewRevocations(), called: make(chan struct{}), release: make(chan struct{})}
	n := startRevocationNode(t, store)
	token := func(jti string) string { return revocable(t, "u", jti) }
	newClient := func() (*Client, *fakeTransport) {
		tr := &fakeTransport{}
		c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Closed)
		return c, tr
	}
	// A witness with another token tells when the control goroutine got
	// past the revocation: it handles requests one at a time, in order.
	witness, witnessTr := newClient()
	if _, err := witness.Connect(protocol.ConnectParams{Token: token("j-2")}); err != nil {
		t.Fatal(err)
	}

	store.hold.Store(true)
	c, tr := newClient()
	connected := make(chan error, 1)
	go func() {
		_, err := c.Connect(protocol.ConnectParams{Token: token("j-1")})
		connected <- err
	}()
	<-store.called // the check has read the store: nothing revoked yet
	for _, jti := range []string{"j-1", "j-2"} {
		if err := n.RevokeToken(t.Context(), jti, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	witnessTr.closedWith(t) // j-1's request was handled: the check is still out
	close(store.release)
	if err := <-connected; err != nil {
		t.Fatalf("connect: %v, want it admitted (the check read the store before the revocation)", err)
	}
	if d := tr.closedWith(t); d.Code != protocol.DisconnectTokenRevoked.Code {
		t.Fatalf("closed with %d, want %d", d.Code, protocol.DisconnectTokenRevoked.Code)
	}

	store.hold.Store(false)
	c2, _ := newClient()
	_, err := c2.Connect(protocol.ConnectParams{Token: token("j-1")})
	if perr, ok := err.(*protocol.Error); !ok || perr.Code != protocol.ErrUnauthorized.Code {
		t.Fatalf("connect with the revoked token: %v, want 114", err)
	}
}

// TestRevocationDuringRefusedCheck: the control request of a revocation
// that reaches a node while a refresh to the revoked token is being
// checked (a second client presenting a token revoked a moment ago) does
// not close the connection: the check refuses the token (114) and the
// connection keeps the token it was admitted with, which a revocation
// still closes. (Before, the token being checked counted as held, and the
// connection was closed with 3510 instead: TestRevokeTokenAcrossNodes
// failed so on a loaded machine, for a subscription token.)
func TestRevocationDuringRefusedCheck(t *testing.T) {
	store := &staleStore{Revocations: memory.NewRevocations(), called: make(chan struct{}), release: make(chan struct{})}
	n := startRevocationNode(t, store)
	token := func(jti string) string { return revocable(t, "u", jti) }
	connect := func(jti string) *fakeTransport {
		tr := &fakeTransport{}
		c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Closed)
		if _, err := c.Connect(protocol.ConnectParams{Token: token(jti)}); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	witnessTr := connect("j-w")
	tr := &fakeTransport{}
	c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Closed)
	if _, err := c.Connect(protocol.ConnectParams{Token: token("j-ok")}); err != nil {
		t.Fatal(err)
	}
	if err := store.Revocations.RevokeToken(t.Context(), "j-bad", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	store.hold.Store(true)
	refreshed := make(chan error, 1)
	go func() {
		_, err := c.Refresh(protocol.RefreshParams{Token: token("j-bad")})
		refreshed <- err
	}()
	<-store.called // the check has read the store: j-bad is revoked
	for _, jti := range []string{"j-bad", "j-w"} {
		if err := n.RevokeToken(t.Context(), jti, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	witnessTr.closedWith(t) // j-bad's request was handled: the check is still out
	close(store.release)
	if err := <-refreshed; !errors.Is(err, protocol.ErrUnauthorized) {
		t.Fatalf("refresh to a revoked token: %v, want 114", err)
	}
	tr.mu.Lock()
	closed := tr.closed
	tr.mu.Unlock()
	if closed != nil {
		t.Fatalf("a refused refresh closed the connection with %d", closed.Code)
	}

	store.hold.Store(false)
	if err := n.RevokeToken(t.Context(), "j-ok", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d := tr.closedWith(t); d.Code != protocol.DisconnectTokenRevoked.Code {
		t.Fatalf("closed with %d, want %d (the token it was admitted with revoked)", d.Code, protocol.DisconnectTokenRevoked.Code)
	}
}

// TestSecondConnectLeavesTheTokenAlone: a connected client that sends
// connect again with another token is refused, and that token does not
// replace its own as what revocations go by: revoking its own token still
// closes it.
func TestSecondConnectLeavesTheTokenAlone(t *testing.T) {
	n := startRevocationNode(t, memory.NewRevocations())
	tr := &fakeTransport{}
	c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Closed)
	if _, err := c.Connect(protocol.ConnectParams{Token: revocable(t, "u", "j-1")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Connect(protocol.ConnectParams{Token: revocable(t, "other", "j-2")})
	if perr, ok := err.(*protocol.Error); !ok || perr.Code != protocol.ErrAlreadyConnected.Code {
		t.Fatalf("second connect: %v, want %v", err, protocol.ErrAlreadyConnected)
	}
	if err := n.RevokeToken(t.Context(), "j-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d := tr.closedWith(t); d.Code != protocol.DisconnectTokenRevoked.Code {
		t.Fatalf("closed with %d, want %d (its own token revoked)", d.Code, protocol.DisconnectTokenRevoked.Code)
	}
}

// TestDroppedControlRechecks: a control request dropped from a full queue
// marks the node, and the marked node rechecks its connections against
// the store: a revocation whose request was lost still closes what it
// revoked.
func TestDroppedControlRechecks(t *testing.T) {
	full := &Node{controls: make(chan []byte), log: slog.New(slog.DiscardHandler)}
	full.receiveControl([]byte(`{"op":"revoke_token","jti":"x"}`))
	if !full.missedControl.Load() {
		t.Fatal("a dropped control request left no mark")
	}

	store := memory.NewRevocations()
	n := startRevocationNode(t, store)
	tok := revocable(t, "u", "j-1")
	tr := &fakeTransport{}
	c, err := n.NewClient(outbox.New(tr, n.OutboxOptions()), hub.FormatProtocol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Closed)
	if _, err := c.Connect(protocol.ConnectParams{Token: tok}); err != nil {
		t.Fatal(err)
	}
	// The revocation reaches the store, its request to the nodes is lost.
	if err := store.RevokeToken(t.Context(), "j-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n.missedControl.Store(true)
	if d := tr.closedWith(t); d.Code != protocol.DisconnectTokenRevoked.Code {
		t.Fatalf("closed with %d, want %d", d.Code, protocol.DisconnectTokenRevoked.Code)
	}
}

// revocable mints a token of user with id jti, signed for
// startRevocationNode's verifier.
func revocable(t *testing.T, user, jti string) string {
	t.Helper()
	tok, err := auth.Mint(revocationSecret, auth.MintOptions{User: user, ID: jti})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// revocationSecret signs the tokens of startRevocationNode's verifier.
var revocationSecret = []byte("0123456789abcdef0123456789abcdef")

// startRevocationNode starts a node that verifies tokens signed with
// revocationSecret and keeps revocations in store; the test shuts it down.
func startRevocationNode(t *testing.T, store broker.RevocationStore) *Node {
	t.Helper()
	v, err := auth.NewVerifier(auth.Config{HMACSecret: revocationSecret})
	if err != nil {
		t.Fatal(err)
	}
	return startNodeWith(t, Config{Verifier: v}, Deps{Revocations: store})
}
