package redcast

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// dialectFormat stands for another protocol's format in these tests: the
// data of a publication after "pub:".
var dialectFormat = hub.RegisterFormat(func(ev *hub.Event) []byte {
	if ev.Kind != hub.KindPublication {
		return nil
	}
	return append([]byte("pub:"), ev.Pub.Data...)
})

// messages returns what the transport was sent, as strings, once there are
// at least n.
func (f *fakeTransport) messages(t *testing.T, n int) []string {
	t.Helper()
	wait.For(t, fmt.Sprintf("%d messages", n), func() bool { return f.count.Load() >= int64(n) })
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.msgs))
	for i, m := range f.msgs {
		out[i] = string(m)
	}
	return out
}

// A client of another protocol: its own id, subscriptions its transport
// authorized in a namespace closed to anonymous clients, publications that
// do not come back to it, and a publication of the API that leaves out one
// connection.
func TestDialectClient(t *testing.T) {
	n := startNode(t, Config{Namespaces: map[string]auth.Namespace{"p": {Subscribe: auth.SubscribeToken}}})
	newClient := func(id string) (*Client, *fakeTransport) {
		tr := &fakeTransport{}
		c, err := n.NewClientWith(outbox.New(tr, n.OutboxOptions()), dialectFormat, ClientOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Closed)
		return c, tr
	}
	a, trA := newClient("1.1")
	b, trB := newClient("2.2")
	if a.ID() != "1.1" {
		t.Fatalf("ID %q, want the one given", a.ID())
	}
	if err := a.Subscribe(protocol.SubscribeParams{Channel: "p:x"}, nil); !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Fatalf("Subscribe without authorization = %v, want 107", err)
	}
	for _, c := range []*Client{a, b} {
		if err := c.SubscribeAuthorized(protocol.SubscribeParams{Channel: "p:x"}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.PublishAuthorized("p:other", []byte(`1`)); !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Fatalf("PublishAuthorized to a channel not subscribed = %v, want 107", err)
	}
	if err := a.PublishAuthorized("p:x", []byte(`"from a"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.PublishExcept(context.Background(), "p:x", []byte(`"not for b"`), b.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(context.Background(), "p:x", []byte(`"all"`)); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(trA.messages(t, 2)); got != `[pub:"not for b" pub:"all"]` {
		t.Errorf("a got %s, want the publications of others", got)
	}
	if got := fmt.Sprint(trB.messages(t, 2)); got != `[pub:"from a" pub:"all"]` {
		t.Errorf("b got %s, want all but the one that left it out", got)
	}
}

// A client of another protocol is one user: presence counts it by that
// user, and OnUserPresence hears the user's first entry and last exit.
func TestDialectUserPresence(t *testing.T) {
	n := startNode(t, Config{Namespaces: map[string]auth.Namespace{"p": {Subscribe: auth.SubscribeToken, Presence: true}}})
	type change struct {
		entered bool
		user    string
	}
	changes := make(chan change, 8)
	n.OnUserPresence(func(_ context.Context, _ string, entered bool, info *protocol.ClientInfo) {
		changes <- change{entered, info.User}
	})
	join := func(id string) *Client {
		c, err := n.NewClientWith(outbox.New(&fakeTransport{}, n.OutboxOptions()), dialectFormat, ClientOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetUser("u", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := c.SetUser("u", nil); err != nil {
			t.Fatalf("SetUser to the same user again = %v", err)
		}
		if err := c.SetUser("v", nil); !errors.Is(err, protocol.ErrPermissionDenied) {
			t.Fatalf("SetUser to another user = %v, want 107", err)
		}
		if err := c.SubscribeAuthorized(protocol.SubscribeParams{Channel: "p:x"}, nil, nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := join("1.1")
	b := join("2.2")
	a.Closed()
	b.Closed()
	// f is called from the subscribes and the closes themselves.
	close(changes)
	var got []change
	for c := range changes {
		got = append(got, c)
	}
	if want := []change{{true, "u"}, {false, "u"}}; !slices.Equal(got, want) {
		t.Errorf("heard %+v, want %+v", got, want)
	}
}
