package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// The probe checks that each pub/sub link still hears what is published:
// a connection can stay open and yet be deaf (a network path that stopped
// forwarding, a master that Sentinel replaced while the link stayed on the
// old one). Every Config.ProbeInterval the broker publishes a token on a
// probe channel of each link, through its ordinary client, as any
// publication goes; the link is subscribed to that channel. A token not
// back by the next round means the link is deaf: it is treated as broken
// (not ready, reconnected on a fresh connection, its channels subscribed
// again and filled from history or their gap reported), and counted in
// ProbeFailures.

// ProbeFailures returns how many times a pub/sub connection did not
// return the broker's probe in time and was replaced.
func (b *Broker) ProbeFailures() uint64 { return b.probeFailures.Load() }

// probeChannel returns the probe channel of the link to addr: a pub/sub
// channel only this broker uses (no channel name of a client has '!'),
// in a slot that addr owns on a Cluster.
func (s *subscriptions) probeChannel(addr string) string {
	base := s.b.cfg.Prefix + ":{!probe:" + s.b.id + ":"
	for i := 0; ; i++ {
		name := base + strconv.Itoa(i) + "}"
		if !s.b.sharded {
			return name
		}
		if owner, ok := s.topo.master(name); (ok && owner == addr) || i > 1<<16 {
			return name
		}
	}
}

// probeLoop probes every link each Config.ProbeInterval until ctx ends.
func (s *subscriptions) probeLoop(ctx context.Context) {
	t := time.NewTicker(s.b.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.probe(ctx)
	}
}

// probe declares deaf the links whose last token did not come back, and
// sends a new token on every other link.
func (s *subscriptions) probe(ctx context.Context) {
	var deaf, send []*link
	s.mu.Lock()
	for _, l := range s.links {
		switch {
		case l.down, l.probeMoved:
		case l.token != "":
			deaf = append(deaf, l)
		default:
			l.token = newEpoch()
			send = append(send, l)
		}
	}
	s.mu.Unlock()
	for _, l := range deaf {
		s.b.probeFailures.Add(1)
		s.linkDown(l)
	}
	if len(send) == 0 {
		return
	}
	cmds := make(rueidis.Commands, len(send))
	for i, l := range send {
		if s.b.sharded {
			cmds[i] = s.b.client.B().Spublish().Channel(l.probeName()).Message(l.token).Build()
		} else {
			cmds[i] = s.b.client.B().Publish().Channel(l.probeName()).Message(l.token).Build()
		}
	}
	octx, cancel := context.WithTimeout(ctx, s.b.cfg.Timeout)
	defer cancel()
	for i, r := range s.b.client.DoMulti(octx, cmds...) {
		if r.Error() != nil {
			// Redis did not take the token: no verdict on the link this
			// round (an unreachable Redis breaks the link by itself).
			s.mu.Lock()
			if l := send[i]; l.token != "" {
				l.token = ""
			}
			s.mu.Unlock()
		}
	}
}

// probed notes a token that came back on a link.
func (s *subscriptions) probed(l *link, token string) {
	s.mu.Lock()
	if l.token == token {
		l.token = ""
		s.b.probesBack.Add(1)
	}
	s.mu.Unlock()
}

// moveProbes gives the links whose probe channel Redis dropped (its slot
// moved to another master) a new one, in a slot their master owns now, so
// that a resharding does not look like a deaf connection. It runs on the
// run goroutine, after the topology was read again.
func (s *subscriptions) moveProbes(ctx context.Context) error {
	s.mu.Lock()
	var moved []*link
	for _, l := range s.links {
		if l.probeMoved && !l.down {
			moved = append(moved, l)
		}
	}
	s.mu.Unlock()
	for _, l := range moved {
		name := s.probeChannel(l.addr)
		l.probe.Store(&name)
		if err := s.send(ctx, l, true, []string{name}, true); err != nil {
			return err
		}
		s.mu.Lock()
		l.probeMoved = false
		s.mu.Unlock()
	}
	return nil
}
