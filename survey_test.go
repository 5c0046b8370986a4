package redcast

import (
	"testing"
	"time"

	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
)

// TestSubscribersAcrossNodes: three nodes on Redis count the subscribers
// of channels on every node; a node in the table that does not answer (a
// ghost: crashed, not yet forgotten) is left out after the survey's
// timeout.
func TestSubscribersAcrossNodes(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	var nodes []*Node
	for range 3 {
		nodes = append(nodes, startRedisNode(t, srv.URL(), "survey", nil, nil))
	}
	for i, n := range nodes {
		for range i + 1 { // 1, 2 and 3 subscribers of room:a
			c := newConnected(t, n, &fakeTransport{})
			if err := c.Subscribe(protocol.SubscribeParams{Channel: "room:a"}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := newConnected(t, nodes[2], &fakeTransport{})
	if err := c.Subscribe(protocol.SubscribeParams{Channel: "room:b"}, nil); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "every node to know the others", func() bool {
		for _, n := range nodes {
			if len(n.otherNodes()) != 2 {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		counts, err := n.Subscribers(t.Context(), []string{"room:a", "room:b", "room:c"})
		if err != nil {
			t.Fatal(err)
		}
		if counts["room:a"] != 6 || counts["room:b"] != 1 || counts["room:c"] != 0 || len(counts) != 3 {
			t.Fatalf("counts %v, want room:a 6, room:b 1, room:c 0", counts)
		}
	}
	nodes[0].table.record(NodeInfo{ID: "ghost"}) // never announces
	begin := time.Now()
	counts, err := nodes[0].Subscribers(t.Context(), []string{"room:a"})
	if err != nil || counts["room:a"] != 6 {
		t.Fatalf("with a ghost: %v, %v; want room:a 6", counts, err)
	}
	if d := time.Since(begin); d < surveyTimeout {
		t.Fatalf("the survey ended after %v, before its timeout, without the ghost's answer", d)
	}
}
