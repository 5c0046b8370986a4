package memory

import (
	"cmp"
	"context"
	"errors"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

var _ broker.PresenceExpirer = (*Presence)(nil)

var errNilClientInfo = errors.New("memory: nil client info")

// Presence keeps who is in each channel of a single node. Its methods are
// safe for concurrent use; channels are sharded like the Broker's streams.
// Without a TTL (NewPresence), entries stay until removed: the node removes
// a client's entries when it unsubscribes or disconnects. With one
// (NewExpiringPresence), entries expire like the Redis broker's. The zero
// value is not usable.
type Presence struct {
	timing broker.PresenceTiming
	seed   maphash.Seed
	shards [numShards]presenceShard
}

type presenceShard struct {
	mu       sync.RWMutex
	channels map[string]*presenceSet
}

// presenceSet is the presence of one channel.
type presenceSet struct {
	clients map[string]presenceEntry // client ID → entry
	users   map[string]int           // user → how many of its clients are here
}

type presenceEntry struct {
	info    *protocol.ClientInfo
	expires time.Time // zero: never
}

// NewPresence returns an empty Presence whose entries never expire.
func NewPresence() *Presence { return NewExpiringPresence(0) }

// NewExpiringPresence returns an empty Presence whose entries expire as
// broker.NewPresenceTiming(ttl) says, unless refreshed; ttl <= 0 means
// never. Tests use it to check a node against the Redis broker's
// semantics without Redis.
func NewExpiringPresence(ttl time.Duration) *Presence {
	p := &Presence{timing: broker.NewPresenceTiming(ttl), seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].channels = make(map[string]*presenceSet)
	}
	return p
}

func (p *Presence) shard(channel string) *presenceShard {
	return &p.shards[maphash.String(p.seed, channel)%numShards]
}

// PresenceTiming implements broker.PresenceExpirer.
func (p *Presence) PresenceTiming() broker.PresenceTiming { return p.timing }

// AddPresence records info in the channel, replacing an earlier record of
// the same client (info.Client). info is kept, not copied: do not modify it.
func (p *Presence) AddPresence(ctx context.Context, channel string, info *protocol.ClientInfo) (broker.PresenceChange, error) {
	if err := ctx.Err(); err != nil {
		return broker.PresenceChange{}, err
	}
	if info == nil {
		return broker.PresenceChange{}, errNilClientInfo
	}
	e := presenceEntry{info: info}
	if p.timing.Lifetime > 0 {
		e.expires = time.Now().Add(p.timing.Lifetime)
	}
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.channels[channel]
	if set == nil {
		set = &presenceSet{clients: make(map[string]presenceEntry), users: make(map[string]int)}
		sh.channels[channel] = set
	}
	_, had := set.clients[info.Client]
	set.clients[info.Client] = e
	if had {
		return broker.PresenceChange{}, nil
	}
	first := true
	if info.User != "" {
		set.users[info.User]++
		first = set.users[info.User] == 1
	}
	return broker.PresenceChange{Client: info, User: first}, nil
}

// forget removes a client from the channel's set; the shard is locked.
func (sh *presenceShard) forget(channel string, set *presenceSet, id string) broker.PresenceChange {
	e, ok := set.clients[id]
	if !ok {
		return broker.PresenceChange{}
	}
	delete(set.clients, id)
	if len(set.clients) == 0 {
		delete(sh.channels, channel)
	}
	last := true
	if u := e.info.User; u != "" {
		set.users[u]--
		last = set.users[u] == 0
		if last {
			delete(set.users, u)
		}
	}
	return broker.PresenceChange{Client: e.info, User: last}
}

// RemovePresence forgets the client in the channel. Forgetting a client
// that is not there is not an error.
func (p *Presence) RemovePresence(ctx context.Context, channel, clientID string) (broker.PresenceChange, error) {
	if err := ctx.Err(); err != nil {
		return broker.PresenceChange{}, err
	}
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.channels[channel]
	if set == nil {
		return broker.PresenceChange{}, nil
	}
	return sh.forget(channel, set, clientID), nil
}

// ExpirePresence removes the channel's expired clients and returns them,
// oldest first.
func (p *Presence) ExpirePresence(ctx context.Context, channel string) ([]broker.PresenceChange, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.timing.Lifetime <= 0 {
		return nil, nil
	}
	now := time.Now()
	sh := p.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.channels[channel]
	if set == nil {
		return nil, nil
	}
	var expired []presenceEntry
	for _, e := range set.clients {
		if !live(e.expires, now) {
			expired = append(expired, e)
		}
	}
	slices.SortFunc(expired, func(a, b presenceEntry) int {
		return cmp.Or(a.expires.Compare(b.expires), cmp.Compare(a.info.Client, b.info.Client))
	})
	out := make([]broker.PresenceChange, 0, len(expired))
	for _, e := range expired {
		out = append(out, sh.forget(channel, set, e.info.Client))
	}
	return out, nil
}

// Presence returns the clients in the channel that have not expired, in
// no particular order. The slice is the caller's; the infos are shared and
// must not be modified.
func (p *Presence) Presence(ctx context.Context, channel string) ([]*protocol.ClientInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	sh := p.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	set := sh.channels[channel]
	if set == nil {
		return []*protocol.ClientInfo{}, nil
	}
	infos := make([]*protocol.ClientInfo, 0, len(set.clients))
	for _, e := range set.clients {
		if live(e.expires, now) {
			infos = append(infos, e.info)
		}
	}
	return infos, nil
}
