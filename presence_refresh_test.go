package redcast

import (
	"context"
	"testing"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
)

// steppedPresence is a presence manager that runs a step of the test
// before or after one of its calls ("add-before", "remove-after", …),
// each once: the interleavings of a refresh with a client's own
// subscribes and unsubscribes, made on one goroutine. Calls made by a step
// run no step.
type steppedPresence struct {
	broker.PresenceManager
	steps  map[string]func()
	inStep bool
}

func (p *steppedPresence) step(name string) {
	f := p.steps[name]
	if f == nil || p.inStep {
		return
	}
	delete(p.steps, name)
	p.inStep = true
	defer func() { p.inStep = false }()
	f()
}

func (p *steppedPresence) AddPresence(ctx context.Context, ch string, info *protocol.ClientInfo) (broker.PresenceChange, error) {
	p.step("add-before")
	defer p.step("add-after")
	return p.PresenceManager.AddPresence(ctx, ch, info)
}

func (p *steppedPresence) RemovePresence(ctx context.Context, ch, id string) (broker.PresenceChange, error) {
	p.step("remove-before")
	defer p.step("remove-after")
	return p.PresenceManager.RemovePresence(ctx, ch, id)
}

// A presence refresh of a subscription that the client drops and makes
// again meanwhile: the refresh's add comes after the unsubscribe's
// remove, so it makes the client enter again, and the new subscription's
// own add finds it there and announces nothing. Whichever moment the new
// subscription comes, the client stays in presence, and its new join is
// announced once.
func TestRefreshRacesResubscribe(t *testing.T) {
	for _, resubscribe := range []string{
		"add-after",     // before the refresh looks whose add it was
		"remove-before", // after it looked, before it undoes its add
	} {
		t.Run(resubscribe, func(t *testing.T) {
			pm := &steppedPresence{PresenceManager: memory.NewPresence()}
			n := startNodeWith(t, Config{}, Deps{Presence: pm})
			const ch = "chat:refresh"
			sub := protocol.SubscribeParams{Channel: ch, JoinLeave: true}
			watcher := &fakeTransport{}
			if err := newConnected(t, n, watcher).Subscribe(sub, nil); err != nil {
				t.Fatal(err)
			}
			c := newConnected(t, n, &fakeTransport{})
			if err := c.Subscribe(sub, nil); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			old := c.subs[ch]
			c.mu.Unlock()

			pm.steps = map[string]func(){
				"add-before": func() { c.Unsubscribe(ch) },
				resubscribe: func() {
					if err := c.Subscribe(sub, nil); err != nil {
						t.Error(err)
					}
				},
			}
			n.refreshSub(t.Context(), old)
			if len(pm.steps) != 0 {
				t.Fatalf("steps %v did not run", pm.steps)
			}

			infos, err := pm.Presence(t.Context(), ch)
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) != 2 {
				t.Errorf("%d clients in presence after the refresh, want 2 (the watcher and the client)", len(infos))
			}
			// Everything is queued by now: a publication after it
			// comes last.
			if _, err := n.Publish(t.Context(), ch, []byte(`"end"`)); err != nil {
				t.Fatal(err)
			}
			wait.For(t, "the watcher's last publication", func() bool {
				lines := watcher.waitLines(t, 0)
				return len(lines) > 0 && lines[len(lines)-1].Push.Type == protocol.PushPublication
			})
			joins, leaves := pushesAbout(t, watcher, protocol.PushJoin, c.ID()), pushesAbout(t, watcher, protocol.PushLeave, c.ID())
			if joins != 2 || leaves != 1 {
				t.Errorf("the watcher saw the client join %d times and leave %d times, want 2 and 1", joins, leaves)
			}
		})
	}
}
