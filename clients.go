package redcast

import (
	"errors"

	"github.com/redcast/redcast/protocol"
)

// This file is the node's client registry: every registered Client, the
// connection limit, and what unregistering counts.

// Admit reports whether the node takes a new connection now: ErrDraining
// once it is shutting down (Drain), ErrConnectionLimit when it has
// MaxConnections clients, nil otherwise. Transports call it before they
// upgrade a connection or start a response, so that a refusal is still
// an HTTP 503 that a balancer can pass on to another node; NewClient
// decides again (the node may have filled meanwhile).
func (n *Node) Admit() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.admitLocked()
}

// admitLocked is Admit; n.mu is held.
func (n *Node) admitLocked() error {
	switch {
	case n.draining:
		return ErrDraining
	case len(n.clients) >= n.cfg.MaxConnections:
		return ErrConnectionLimit
	}
	return nil
}

// NumClients returns how many clients are registered.
func (n *Node) NumClients() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.clients)
}

// Errors of Admit and NewClient.
var (
	// ErrDraining is returned once Drain or Shutdown has begun.
	ErrDraining = errors.New("redcast: node is shutting down")
	// ErrConnectionLimit is returned when the node has MaxConnections clients.
	ErrConnectionLimit = errors.New("redcast: connection limit reached")
)

func (n *Node) register(c *Client) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.admitLocked(); err != nil {
		return err
	}
	n.clients[c] = struct{}{}
	n.metrics.Connections.Inc()
	n.metrics.ConnectionsOpened.Inc()
	return nil
}

func (n *Node) unregister(c *Client) {
	n.mu.Lock()
	delete(n.clients, c)
	draining := n.draining
	n.mu.Unlock()
	code := uint16(c.closeCode.Load())
	n.metrics.Connections.Dec()
	n.metrics.Closed(code)
	n.connectionClosed(c, code)
	if code == protocol.DisconnectSlowConsumer.Code {
		n.metrics.SlowConsumers.Inc()
	}
	if draining {
		select {
		case n.gone <- struct{}{}:
		default:
		}
	}
}

// clientList returns the registered clients.
func (n *Node) clientList() []*Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Client, 0, len(n.clients))
	for c := range n.clients {
		out = append(out, c)
	}
	return out
}
