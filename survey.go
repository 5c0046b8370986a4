package redcast

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// This file counts the subscribers of channels across the cluster, for
// the HTTP APIs that report them (Pusher's subscription_count): the node
// asks every node on the control channel (opCount) and each answers with
// its local counts (opCounted, to the asking node). Nothing is kept
// between surveys: a subscribe costs nothing more.

// Survey operations and bounds.
const (
	opCount   = "count"
	opCounted = "counted"
	// surveyTimeout bounds how long a survey waits for the nodes of the
	// node table: a node that does not answer by then (it crashed and its
	// subscribers are gone, or it is overloaded) is left out.
	surveyTimeout = time.Second
	// surveyChunk is the most channels one request names; a survey of
	// more sends several.
	surveyChunk = 1000
)

// surveys are the surveys a node has under way, by id.
type surveys struct {
	mu      sync.Mutex
	pending map[string]chan surveyReply
}

// surveyReply is one node's answer.
type surveyReply struct {
	from   string
	counts map[string]int
}

// Subscribers returns how many connections of every node are subscribed to
// each of chans: this node's count (LocalSubscribers) plus what the other
// nodes it knows (Nodes) answer within a second; a node that does not
// answer is left out. On the memory broker it is this node's count.
func (n *Node) Subscribers(ctx context.Context, chans []string) (map[string]int, error) {
	counts := make(map[string]int, len(chans))
	for _, ch := range chans {
		counts[ch] = n.LocalSubscribers(ch)
	}
	others := n.otherNodes()
	if len(others) == 0 || len(chans) == 0 {
		return counts, nil
	}
	for chunk := range slices.Chunk(chans, surveyChunk) {
		if err := n.survey(ctx, chunk, others, counts); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// otherNodes returns the ids of the nodes in the table but this one.
func (n *Node) otherNodes() map[string]bool {
	n.table.mu.Lock()
	defer n.table.mu.Unlock()
	out := make(map[string]bool, len(n.table.nodes))
	for id := range n.table.nodes {
		if id != n.table.id {
			out[id] = true
		}
	}
	return out
}

// survey asks the other nodes to count chans and adds their answers to
// counts, waiting for those of want at most surveyTimeout.
func (n *Node) survey(ctx context.Context, chans []string, want map[string]bool, counts map[string]int) error {
	id := newClientID()
	replies := make(chan surveyReply, len(want)+8)
	n.surveys.mu.Lock()
	if n.surveys.pending == nil {
		n.surveys.pending = make(map[string]chan surveyReply)
	}
	n.surveys.pending[id] = replies
	n.surveys.mu.Unlock()
	defer func() {
		n.surveys.mu.Lock()
		delete(n.surveys.pending, id)
		n.surveys.mu.Unlock()
	}()
	if err := n.publishControl(ctx, control{Op: opCount, Survey: id, From: n.table.id, Channels: chans}); err != nil {
		return fmt.Errorf("redcast: count subscribers: %w", err)
	}
	timeout := time.NewTimer(surveyTimeout)
	defer timeout.Stop()
	want = maps.Clone(want)
	for len(want) > 0 {
		select {
		case r := <-replies:
			delete(want, r.from)
			for ch, k := range r.counts {
				if _, ok := counts[ch]; ok {
					counts[ch] += k
				}
			}
		case <-timeout.C:
			n.log.Warn("nodes did not answer a subscriber count", "nodes", len(want))
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// handleSurvey handles a survey's request or reply; it reports whether c
// was one.
func (n *Node) handleSurvey(ctx context.Context, c control) bool {
	switch c.Op {
	case opCount:
		if c.From == n.table.id || c.Survey == "" || len(c.Channels) > surveyChunk {
			return true // this node counted its own
		}
		counts := make(map[string]int, len(c.Channels))
		for _, ch := range c.Channels {
			if k := n.LocalSubscribers(ch); k > 0 {
				counts[ch] = k
			}
		}
		actx, cancel := context.WithTimeout(ctx, surveyTimeout)
		defer cancel()
		err := n.publishControl(actx, control{Op: opCounted, Survey: c.Survey, To: c.From, From: n.table.id, Counts: counts})
		if err != nil && ctx.Err() == nil {
			n.log.Warn("answering a subscriber count failed", "err", err)
		}
		return true
	case opCounted:
		if c.To != n.table.id {
			return true
		}
		n.surveys.mu.Lock()
		replies := n.surveys.pending[c.Survey]
		n.surveys.mu.Unlock()
		if replies == nil {
			return true // the survey ended
		}
		select {
		case replies <- surveyReply{from: c.From, counts: c.Counts}:
		default: // more answers than nodes: the survey has what it needs
		}
		return true
	}
	return false
}
