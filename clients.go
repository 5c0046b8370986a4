package redcast

import (
	"errors"

	"github.com/redcast/redcast/protocol"
)

// This file is the node's client registry: every registered Client, the
// connection limit, and what unregistering counts.

// Full reports whether the node has as many clients as it accepts, so that
// transports can refuse a connection before upgrading it.
func (n *Node) Full() bool { return n.NumClients() >= n.cfg.MaxConnections }

// NumClients returns how many clients are registered.
func (n *Node) NumClients() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.clients)
}

// Errors of NewClient.
var (
	// ErrDraining is returned once Shutdown has begun.
	ErrDraining = errors.New("redcast: node is shutting down")
	// ErrConnectionLimit is returned when the node has MaxConnections clients.
	ErrConnectionLimit = errors.New("redcast: connection limit reached")
)

func (n *Node) register(c *Client) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.draining {
		return ErrDraining
	}
	if len(n.clients) >= n.cfg.MaxConnections {
		return ErrConnectionLimit
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
