package redcast

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file keeps the table of the nodes serving the same channels: each
// node announces itself on the control channel every Config.NodeInfoInterval,
// and forgets nodes it has not heard from in three intervals.

// NodeInfo describes one node, as it announced itself.
type NodeInfo struct {
	// ID is random per process; Name is Config.NodeName (default the host
	// name).
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Started is when the node started (Unix milliseconds); Updated when
	// it sent this info.
	Started int64 `json:"started"`
	Updated int64 `json:"updated"`
	// Connections, Subscriptions and Channels are the node's current
	// counts (Channels: with a subscriber on this node).
	Connections   int `json:"connections"`
	Subscriptions int `json:"subscriptions"`
	Channels      int `json:"channels"`
	// PublicationsPerSecond are publications accepted by the node (from
	// clients and the API) and PushesPerSecond messages it fanned out to
	// its connections, both averaged over the last interval.
	PublicationsPerSecond float64 `json:"publications_per_second"`
	PushesPerSecond       float64 `json:"pushes_per_second"`
	// TopChannels are the node's channels with the most local
	// subscribers, at most maxTopChannels, most first.
	TopChannels []ChannelCount `json:"top_channels,omitempty"`
	// Counts are what the node's components count by name (see
	// Node.ReportCount): a Pusher app's connections, "pusher:{app id}".
	Counts map[string]int `json:"counts,omitempty"`
}

// ChannelCount is a channel and its number of subscribers.
type ChannelCount struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// maxTopChannels bounds NodeInfo.TopChannels.
const maxTopChannels = 20

// opNode announces a node's info on the control channel.
const opNode = "node"

// nodeTable is what a node knows of all nodes, itself included.
type nodeTable struct {
	id      string
	name    string
	started time.Time

	// publications and pushes count since start, for the rates.
	publications, pushes atomic.Uint64

	// newcomer asks the announcing goroutine to announce now.
	newcomer chan struct{}

	mu    sync.Mutex
	nodes map[string]NodeInfo
	// counts are the counts the node announces (ReportCount).
	counts map[string]func() int
	// last counts and time, for the rates of the next announcement.
	lastPubs, lastPushes uint64
	lastAt               time.Time
}

func newNodeTable(name string) *nodeTable {
	if name == "" {
		name, _ = os.Hostname()
	}
	now := time.Now()
	return &nodeTable{id: newClientID(), name: name, started: now, lastAt: now, nodes: make(map[string]NodeInfo),
		counts: make(map[string]func() int), newcomer: make(chan struct{}, 1)}
}

// ReportCount makes the node announce, under name, what count returns
// (called on each announcement, every 2 s): what a component of the node
// counts and wants to know of the whole cluster (OtherNodesCount). Call it
// before the node starts; count must be cheap, safe for concurrent use,
// and take no lock of the node.
func (n *Node) ReportCount(name string, count func() int) {
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	n.table.counts[name] = count
}

// OtherNodesCount returns the sum of the counts named name that the other
// nodes announced last (ReportCount): as of up to one announcement
// interval ago.
func (n *Node) OtherNodesCount(name string) int {
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	sum := 0
	for id, info := range n.table.nodes {
		if id != n.table.id {
			sum += info.Counts[name]
		}
	}
	return sum
}

// ID returns the node's random id.
func (n *Node) ID() string { return n.table.id }

// info computes the node's own info now.
func (n *Node) info() NodeInfo {
	t := n.table
	now := time.Now()
	pubs, pushes := t.publications.Load(), t.pushes.Load()
	t.mu.Lock()
	secs := now.Sub(t.lastAt).Seconds()
	var pubRate, pushRate float64
	if secs > 0 {
		pubRate = float64(pubs-t.lastPubs) / secs
		pushRate = float64(pushes-t.lastPushes) / secs
	}
	t.lastPubs, t.lastPushes, t.lastAt = pubs, pushes, now
	var counts map[string]int
	if len(t.counts) > 0 {
		counts = make(map[string]int, len(t.counts))
		for name, f := range t.counts {
			counts[name] = f() // cheap, and takes no lock (ReportCount)
		}
	}
	t.mu.Unlock()

	var top []ChannelCount
	subs := 0
	for _, ch := range n.hub.Channels() {
		if ch == controlChannel {
			continue
		}
		k := n.hub.NumSubscribers(ch)
		subs += k
		top = append(top, ChannelCount{Channel: ch, Subscribers: k})
	}
	channels := len(top)
	slices.SortFunc(top, func(a, b ChannelCount) int {
		if a.Subscribers != b.Subscribers {
			return b.Subscribers - a.Subscribers
		}
		return strings.Compare(a.Channel, b.Channel)
	})
	return NodeInfo{
		Counts: counts,
		ID:     t.id, Name: t.name, Version: Version,
		Started: t.started.UnixMilli(), Updated: now.UnixMilli(),
		Connections: n.NumClients(), Subscriptions: subs, Channels: channels,
		PublicationsPerSecond: pubRate, PushesPerSecond: pushRate,
		TopChannels: top[:min(len(top), maxTopChannels)],
	}
}

// announce publishes the node's info every interval until ctx ends, and
// forgets nodes silent for three intervals.
func (n *Node) announce(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		info := n.info()
		n.table.record(info) // known at once, even while the broker is down
		actx, cancel := context.WithTimeout(ctx, interval)
		if err := n.publishControl(actx, control{Op: opNode, Node: &info}); err != nil && ctx.Err() == nil {
			n.log.Warn("announcing node info failed", "err", err)
		}
		cancel()
		n.table.expire(time.Now().Add(-3 * interval))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.table.newcomer:
		}
	}
}

// record notes a node's info. A node heard of for the first time makes
// this one announce itself at once (newcomer), so that a node that starts
// knows the others within a round trip, not an interval.
func (t *nodeTable) record(info NodeInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	info.Updated = time.Now().UnixMilli() // by our clock, for expiry
	if _, known := t.nodes[info.ID]; !known && info.ID != t.id {
		select {
		case t.newcomer <- struct{}{}:
		default: // an announcement is due already
		}
	}
	t.nodes[info.ID] = info
}

func (t *nodeTable) expire(before time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, info := range t.nodes {
		if id != t.id && info.Updated < before.UnixMilli() {
			delete(t.nodes, id)
		}
	}
}

// Nodes returns the nodes serving the same channels (this one included)
// as they last announced themselves, sorted by name then id. On the memory
// broker it is only this node.
func (n *Node) Nodes() []NodeInfo {
	t := n.table
	t.mu.Lock()
	out := make([]NodeInfo, 0, len(t.nodes))
	for _, info := range t.nodes {
		out = append(out, info)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// nodeInfoFrom decodes the info of a node announcement.
func nodeInfoFrom(c control) (NodeInfo, bool) {
	if c.Node == nil || c.Node.ID == "" {
		return NodeInfo{}, false
	}
	info := *c.Node
	if len(info.TopChannels) > maxTopChannels {
		info.TopChannels = info.TopChannels[:maxTopChannels]
	}
	return info, true
}
