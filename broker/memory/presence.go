package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

var _ broker.PresenceManager = (*Presence)(nil)

var errNilClientInfo = errors.New("memory: nil client info")

// Presence keeps who is in each channel of a single node. Its methods are
// safe for concurrent use; channels are sharded like the Broker's streams.
// Entries stay until removed: the node removes a client's entries when it
// unsubscribes or disconnects. The zero value is not usable: call
// NewPresence.
type Presence struct {
	seed   maphash.Seed
	shards [numShards]presenceShard
}

type presenceShard struct {
	mu       sync.RWMutex
	channels map[string]map[string]*protocol.ClientInfo // channel → client ID → info
}

// NewPresence returns an empty Presence.
func NewPresence() *Presence {
	p := &Presence{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].channels = make(map[string]map[string]*protocol.ClientInfo)
	}
	return p
}

func (p *Presence) shard(channel string) *presenceShard {
	return &p.shards[maphash.String(p.seed, channel)%numShards]
}

// AddPresence records info in the channel, replacing an earlier record of
// the same client (info.Client). info is kept, not copied: do not modify it.
func (p *Presence) AddPresence(ctx context.Context, channel string, info *protocol.ClientInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if info == nil {
		return errNilClientInfo
	}
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	clients := sh.channels[channel]
	if clients == nil {
		clients = make(map[string]*protocol.ClientInfo)
		sh.channels[channel] = clients
	}
	clients[info.Client] = info
	return nil
}

// RemovePresence forgets the client in the channel. Forgetting a client
// that is not there is not an error.
func (p *Presence) RemovePresence(ctx context.Context, channel, clientID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	clients := sh.channels[channel]
	delete(clients, clientID)
	if len(clients) == 0 {
		delete(sh.channels, channel)
	}
	return nil
}

// Presence returns the clients in the channel, in no particular order. The
// slice is the caller's; the infos are shared and must not be modified.
func (p *Presence) Presence(ctx context.Context, channel string) ([]*protocol.ClientInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sh := p.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	clients := sh.channels[channel]
	infos := make([]*protocol.ClientInfo, 0, len(clients))
	for _, info := range clients {
		infos = append(infos, info)
	}
	return infos, nil
}
