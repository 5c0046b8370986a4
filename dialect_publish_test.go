package redcast

import (
	"errors"
	"testing"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// A client of another protocol that keeps publishing over its rate is
// refused with 116 and, at the MaxRefusals-th refusal in a row, closed with
// 3503, as a client of the full protocol is.
func TestPublishAuthorizedRefusals(t *testing.T) {
	const maxRefusals = 3
	n := startNode(t, Config{
		Namespaces:   map[string]auth.Namespace{"p": {Subscribe: auth.SubscribeToken}},
		PublishRate:  0.001, // one token, then none for the test's duration
		PublishBurst: 1,
		MaxRefusals:  maxRefusals,
	})
	tr := &fakeTransport{}
	c, err := n.NewClientWith(outbox.New(tr, n.OutboxOptions()), dialectFormat, ClientOptions{ID: "1.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Closed)
	if err := c.SubscribeAuthorized(protocol.SubscribeParams{Channel: "p:x"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.PublishAuthorized("p:x", []byte(`1`)); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	for i := 1; i <= maxRefusals; i++ {
		if c.out.Closing() {
			t.Fatalf("closed after %d refusals, want %d", i-1, maxRefusals)
		}
		if err := c.PublishAuthorized("p:x", []byte(`1`)); !errors.Is(err, protocol.ErrTooManyRequests) {
			t.Fatalf("publish %d over the rate = %v, want 116", i, err)
		}
	}
	if d := tr.closedWith(t); d.Code != protocol.DisconnectTooManyRequests.Code {
		t.Errorf("closed with %d, want 3503", d.Code)
	}
}
