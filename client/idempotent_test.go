package client

import (
	"errors"
	"testing"

	"github.com/redcast/redcast/protocol"
)

// publishCommand reads the next command, which must be a publish, and
// returns it with its params.
func publishCommand(p *peer) (protocol.Command, protocol.PublishParams) {
	cmd := p.command()
	var pp protocol.PublishParams
	if cmd.Method != protocol.MethodPublish || protocol.DecodeParams(cmd, &pp) != nil {
		p.t.Errorf("fake server: got %s %s, want publish", cmd.Method, cmd.Params)
	}
	return cmd, pp
}

// TestSessionPublishWithKeyRetries: a publish with an idempotency key whose
// connection is lost before the reply is sent again, with the same key, on
// the next connection; one without a key is not.
func TestSessionPublishWithKeyRetries(t *testing.T) {
	keys := make(chan string, 2)
	url := serveSeq(t,
		func(p *peer) {
			p.connect(25)
			_, pp := publishCommand(p)
			keys <- pp.IdempotencyKey
			p.conn.Close() // lost before the reply
		},
		func(p *peer) {
			p.connect(25)
			cmd, pp := publishCommand(p)
			keys <- pp.IdempotencyKey
			p.send(replyLine(cmd.ID, protocol.StreamPosition{Offset: 7, Epoch: "E"}))
			_, pp = publishCommand(p) // without a key
			if pp.IdempotencyKey != "" {
				p.t.Errorf("publish without a key sent key %q", pp.IdempotencyKey)
			}
			p.conn.Close()
		})
	s := connect(t, url, fast)
	pos, err := s.PublishWith(testContext(t), "chat:a", 1, PublishOptions{IdempotencyKey: "k-1"})
	if err != nil || pos != (protocol.StreamPosition{Offset: 7, Epoch: "E"}) {
		t.Fatalf("PublishWith a key across a lost connection: %+v, %v; want offset 7", pos, err)
	}
	for i := range 2 {
		if k := <-keys; k != "k-1" {
			t.Fatalf("attempt %d sent key %q, want k-1", i+1, k)
		}
	}
	if _, err := s.PublishWith(testContext(t), "chat:a", 2, PublishOptions{}); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("PublishWith without a key across a lost connection: %v, want ErrConnectionLost", err)
	}
	s.Close()
}
