package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/internal/wait"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// fast reconnects quickly, as tests want.
var fast = SessionOptions{BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond}

// startServer runs a real redcast server with cfg on a random local port
// and returns its host:port; it is shut down when the test ends.
func startServer(t *testing.T, cfg redcast.Config) string {
	t.Helper()
	addr, _ := testserver.Start(t, server.Config{Node: cfg})
	return addr
}

func wsURL(addr string) string { return "ws://" + addr + "/connection/websocket" }

// connect opens a session, closed when the test ends.
func connect(t *testing.T, url string, opts SessionOptions) *Session {
	t.Helper()
	s, err := Connect(testContext(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// recorder keeps what a subscription's handlers received, in order.
type recorder struct {
	mu     sync.Mutex
	events []any
}

func (r *recorder) add(e any) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) handlers() Handlers {
	return Handlers{
		OnSubscribed:   func(e SubscribedEvent) { r.add(e) },
		OnPublication:  func(e PublicationEvent) { r.add(e) },
		OnJoin:         func(e PresenceEvent) { r.add(joined(e)) },
		OnLeave:        func(e PresenceEvent) { r.add(left(e)) },
		OnUnsubscribed: func(e UnsubscribedEvent) { r.add(e) },
	}
}

type (
	joined PresenceEvent
	left   PresenceEvent
)

func (r *recorder) all() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func ofType[T any](r *recorder) []T {
	var out []T
	for _, e := range r.all() {
		if v, ok := e.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// waitPubs waits for n publications and returns them.
func (r *recorder) waitPubs(t *testing.T, n int) []PublicationEvent {
	t.Helper()
	var got []PublicationEvent
	eventually(t, fmt.Sprintf("%d publications", n), func() bool {
		got = ofType[PublicationEvent](r)
		return len(got) >= n
	})
	return got
}

// waitSubscribed waits for n OnSubscribed events and returns them.
func (r *recorder) waitSubscribed(t *testing.T, n int) []SubscribedEvent {
	t.Helper()
	var got []SubscribedEvent
	eventually(t, fmt.Sprintf("%d subscribed events", n), func() bool {
		got = ofType[SubscribedEvent](r)
		return len(got) >= n
	})
	return got
}

// eventually polls cond until it holds, failing the test after 15s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Within(t, 15*time.Second, what, cond)
}

// checkOffsets fails unless pubs have the offsets from, from+1 … to.
func checkOffsets(t *testing.T, pubs []PublicationEvent, from, to uint64) {
	t.Helper()
	offs := make([]uint64, len(pubs))
	for i, p := range pubs {
		offs[i] = p.Offset
	}
	if uint64(len(pubs)) != to-from+1 {
		t.Fatalf("got offsets %v, want %d to %d", offs, from, to)
	}
	for i, off := range offs {
		if off != from+uint64(i) {
			t.Fatalf("got offsets %v, want %d to %d", offs, from, to)
		}
	}
}

// publisher is a plain client that publishes {"n": i}.
type publisher struct {
	*Client
	n atomic.Int64 // publications acknowledged
}

func newPublisher(t *testing.T, url string) *publisher {
	return &publisher{Client: dial(t, url, Options{})}
}

func (p *publisher) publish(t *testing.T, ch string, count int, pause time.Duration) {
	t.Helper()
	for range count {
		n := p.n.Load() + 1
		if _, err := p.Publish(testContext(t), ch, map[string]int64{"n": n}); err != nil {
			t.Errorf("publish %d: %v", n, err)
			return
		}
		p.n.Store(n)
		time.Sleep(pause)
	}
}

// TestSessionRecoversAcrossDroppedConnections cuts a session's connection
// again and again, once keeping it away while publications go on, and
// checks that the handlers got every publication once, in order.
func TestSessionRecoversAcrossDroppedConnections(t *testing.T) {
	const total = 150
	addr := startServer(t, redcast.Config{})
	px := newProxy(t, addr)
	var connects atomic.Int32
	opts := fast
	opts.OnConnect = func(ConnectEvent) { connects.Add(1) }
	s := connect(t, px.url(), opts)
	rec := &recorder{}
	sub, err := s.Subscribe(testContext(t), "news", SubscribeOptions{}, rec.handlers())
	if err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, wsURL(addr))
	var wg sync.WaitGroup
	wg.Go(func() { pub.publish(t, "news", total, time.Millisecond) })

	for _, at := range []int{20, 50} {
		eventually(t, fmt.Sprintf("%d publications", at), func() bool { return len(ofType[PublicationEvent](rec)) >= at })
		px.cut()
	}
	// Stay away while 30 more are published.
	px.setRefuse(true)
	px.cut()
	from := pub.n.Load()
	eventually(t, "30 publications while away", func() bool { return pub.n.Load() >= from+30 || pub.n.Load() == total })
	px.setRefuse(false)
	eventually(t, "110 publications", func() bool { return len(ofType[PublicationEvent](rec)) >= 110 })
	px.cut()
	wg.Wait()

	pubs := rec.waitPubs(t, total)
	time.Sleep(20 * time.Millisecond) // a duplicate would show up now
	pubs = ofType[PublicationEvent](rec)
	checkOffsets(t, pubs, 1, total)
	for _, p := range pubs {
		if want := fmt.Sprintf(`{"n":%d}`, p.Offset); string(p.Data) != want || p.Channel != "news" || p.Epoch == "" {
			t.Fatalf("publication %d: %+v, want data %s", p.Offset, p, want)
		}
	}
	var subs []SubscribedEvent
	eventually(t, "one subscribed event per connection", func() bool {
		subs = ofType[SubscribedEvent](rec)
		return int(connects.Load()) == len(subs)
	})
	if len(subs) < 4 {
		t.Errorf("%d subscribed events, want at least 4", len(subs))
	}
	if subs[0].Recovering {
		t.Errorf("first subscribe recovering: %+v", subs[0])
	}
	for _, e := range subs[1:] {
		if !e.Recovering || !e.Recovered || e.Position.Epoch != pubs[0].Epoch {
			t.Errorf("resubscribe %+v, want recovered in epoch %s", e, pubs[0].Epoch)
		}
	}
	if pos := sub.Position(); pos != (protocol.StreamPosition{Offset: total, Epoch: pubs[0].Epoch}) {
		t.Errorf("Position() = %+v", pos)
	}
}

// TestSessionRecoveryFailed keeps a session away until history no longer
// covers what it missed: OnSubscribed says so and the latest History
// publications follow, then live ones.
func TestSessionRecoveryFailed(t *testing.T) {
	ns := auth.DefaultNamespaces()
	small := ns[""]
	small.HistorySize = 5
	ns[""] = small
	addr := startServer(t, redcast.Config{Namespaces: ns})
	px := newProxy(t, addr)
	s := connect(t, px.url(), fast)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{History: 3}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, wsURL(addr))
	pub.publish(t, "news", 2, 0)
	rec.waitPubs(t, 2)

	px.setRefuse(true)
	px.cut()
	pub.publish(t, "news", 10, 0) // 3 … 12; history keeps 8 … 12
	px.setRefuse(false)
	subs := rec.waitSubscribed(t, 2)
	pub.publish(t, "news", 1, 0)
	pubs := rec.waitPubs(t, 6)

	if e := subs[1]; !e.RecoveryFailed() || !e.Recoverable || e.Position.Offset != 12 {
		t.Errorf("resubscribe %+v, want recovery failed at offset 12", e)
	}
	checkOffsets(t, pubs[:2], 1, 2)
	checkOffsets(t, pubs[2:], 10, 13) // the latest 3, then live
	// The event comes before the publications it announces.
	all := rec.all()
	if i := slices.IndexFunc(all, func(e any) bool { _, ok := e.(SubscribedEvent); return ok && e.(SubscribedEvent).Recovering }); i < 0 ||
		all[i+1].(PublicationEvent).Offset != 10 {
		t.Errorf("events %+v: want the failed recovery right before offset 10", all)
	}
}

// TestSessionServerRestart restarts the server on the same address: the
// session follows the shutdown advice (3001), reconnects, and learns that
// the new server's stream has another epoch.
func TestSessionServerRestart(t *testing.T) {
	srv, err := server.New(server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()

	var mu sync.Mutex
	var disconnects []DisconnectEvent
	opts := fast
	opts.OnDisconnect = func(e DisconnectEvent) {
		mu.Lock()
		disconnects = append(disconnects, e)
		mu.Unlock()
	}
	s := connect(t, wsURL(addr), opts)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{History: 10}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(testContext(t), "news", "before"); err != nil {
		t.Fatal(err)
	}
	first := rec.waitPubs(t, 1)[0]
	if err := srv.Shutdown(testContext(t)); err != nil {
		t.Fatal(err)
	}
	startServerOn(t, addr)
	subs := rec.waitSubscribed(t, 2)
	if e := subs[1]; !e.RecoveryFailed() || e.Position.Epoch == first.Epoch {
		t.Errorf("after the restart: %+v, want a failed recovery in a new epoch", e)
	}
	if _, err := s.Publish(testContext(t), "news", "after"); err != nil {
		t.Fatal(err)
	}
	pubs := rec.waitPubs(t, 2)
	if p := pubs[1]; p.Offset != 1 || string(p.Data) != `"after"` || p.Epoch != subs[1].Position.Epoch {
		t.Errorf("after the restart got %+v", p)
	}
	mu.Lock()
	defer mu.Unlock()
	var d protocol.Disconnect
	if len(disconnects) == 0 || !errors.As(disconnects[0].Err, &d) || d.Code != 3001 || !disconnects[0].Reconnect {
		t.Errorf("disconnect events %+v, want 3001 with reconnect first", disconnects)
	}
}

// startServerOn runs a server on addr (which may take a few tries while
// the old listener goes away).
func startServerOn(t *testing.T, addr string) {
	t.Helper()
	var ln net.Listener
	eventually(t, "listening on "+addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv, err := server.New(server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		<-served
	})
}

// TestSessionQueueFull blocks the handlers until the queue overflows: the
// session drops the connection (ErrQueueFull) and recovers, so that once
// the handler resumes it gets every publication once, in order.
func TestSessionQueueFull(t *testing.T) {
	addr := startServer(t, redcast.Config{})
	var full atomic.Int32
	opts := fast
	opts.QueueSize = 4
	opts.OnDisconnect = func(e DisconnectEvent) {
		if errors.Is(e.Err, ErrQueueFull) && e.Reconnect {
			full.Add(1)
		}
	}
	s := connect(t, wsURL(addr), opts)
	gate := make(chan struct{})
	rec := &recorder{}
	h := rec.handlers()
	h.OnPublication = func(e PublicationEvent) {
		<-gate
		rec.add(e)
	}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{}, h); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, wsURL(addr))
	pub.publish(t, "news", 30, 0)
	eventually(t, "the queue to overflow", func() bool { return full.Load() > 0 })
	close(gate)
	rec.waitPubs(t, 30)
	time.Sleep(20 * time.Millisecond)
	checkOffsets(t, ofType[PublicationEvent](rec), 1, 30)
	for _, e := range ofType[SubscribedEvent](rec)[1:] {
		if !e.Recovered {
			t.Errorf("resubscribe %+v, want recovered", e)
		}
	}
}

func TestSessionJoinLeave(t *testing.T) {
	addr := startServer(t, redcast.Config{})
	s := connect(t, wsURL(addr), fast)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), "room", SubscribeOptions{}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	other := dial(t, wsURL(addr), Options{Name: "bob"})
	if _, err := other.Subscribe(testContext(t), "room", SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's join", func() bool {
		return slices.ContainsFunc(ofType[joined](rec), func(e joined) bool { return e.Client.Client == other.ID() })
	})
	if err := other.Unsubscribe(testContext(t), "room"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's leave", func() bool {
		return slices.ContainsFunc(ofType[left](rec), func(e left) bool { return e.Client.Client == other.ID() && e.Channel == "room" })
	})
	clients, err := s.Presence(testContext(t), "room")
	if err != nil || len(clients) != 1 {
		t.Errorf("Presence = %+v, %v; want the session alone", clients, err)
	}
}

func TestSessionSubscribeAndUnsubscribe(t *testing.T) {
	addr := startServer(t, redcast.Config{})
	s := connect(t, wsURL(addr), fast)
	ctx := testContext(t)
	_, err := s.Subscribe(ctx, "no spaces", SubscribeOptions{}, Handlers{})
	if !errors.Is(err, protocol.ErrInvalidChannel) {
		t.Errorf("invalid channel: %v", err)
	}
	_, err = s.Subscribe(ctx, "nope:x", SubscribeOptions{}, Handlers{})
	if !errors.Is(err, protocol.ErrUnknownNamespace) {
		t.Errorf("unknown namespace: %v", err)
	}
	rec1 := &recorder{}
	sub, err := s.Subscribe(ctx, "news", SubscribeOptions{}, rec1.handlers())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx, "news", SubscribeOptions{}, Handlers{}); !errors.Is(err, protocol.ErrAlreadySubscribed) {
		t.Errorf("second subscription: %v", err)
	}
	if _, err := s.Publish(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	rec1.waitPubs(t, 1)
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Errorf("second Unsubscribe: %v", err)
	}
	// Subscribing again right away works, and only the new subscription
	// receives.
	rec2 := &recorder{}
	if _, err := s.Subscribe(ctx, "news", SubscribeOptions{History: 5}, rec2.handlers()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, "news", 2); err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, rec2.waitPubs(t, 2), 1, 2)
	if got := ofType[PublicationEvent](rec1); len(got) != 1 {
		t.Errorf("the ended subscription got %d publications, want 1", len(got))
	}
	hist, err := s.History(ctx, "news", HistoryOptions{})
	if err != nil || len(hist.Publications) != 2 {
		t.Errorf("History = %+v, %v", hist, err)
	}
}

// TestSessionCallsWaitForConnection checks that Publish and Subscribe made
// while the session is away wait for it to come back.
func TestSessionCallsWaitForConnection(t *testing.T) {
	addr := startServer(t, redcast.Config{})
	px := newProxy(t, addr)
	away := make(chan struct{}, 1)
	opts := fast
	opts.OnDisconnect = func(DisconnectEvent) {
		select {
		case away <- struct{}{}:
		default:
		}
	}
	s := connect(t, px.url(), opts)
	px.setRefuse(true)
	px.cut()
	<-away
	rec := &recorder{}
	subscribed := make(chan error, 1)
	go func() {
		_, err := s.Subscribe(testContext(t), "news", SubscribeOptions{History: 1}, rec.handlers())
		subscribed <- err
	}()
	published := make(chan error, 1)
	go func() {
		_, err := s.Publish(testContext(t), "news", "hi")
		published <- err
	}()
	time.Sleep(50 * time.Millisecond) // both wait (they would fail otherwise)
	px.setRefuse(false)
	if err := <-subscribed; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := <-published; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	rec.waitPubs(t, 1)
}

func TestSessionClose(t *testing.T) {
	addr := startServer(t, redcast.Config{})
	px := newProxy(t, addr)
	away := make(chan struct{}, 1)
	s, err := Connect(testContext(t), px.url(), SessionOptions{
		BaseDelay: time.Hour,
		OnDisconnect: func(DisconnectEvent) {
			select {
			case away <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	px.setRefuse(true)
	px.cut()
	<-away // waiting to reconnect, for up to an hour
	errc := make(chan error, 2)
	go func() {
		_, err := s.Subscribe(context.Background(), "news", SubscribeOptions{}, Handlers{})
		errc <- err
	}()
	go func() {
		_, err := s.Publish(context.Background(), "news", 1)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("call under way: %v, want ErrClosed", err)
		}
	}
	<-s.Done()
	if !errors.Is(s.Err(), ErrClosed) {
		t.Errorf("Err() = %v", s.Err())
	}
	if _, err := s.Subscribe(context.Background(), "news", SubscribeOptions{}, Handlers{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	s.Close()
}

func TestConnectFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Connect(testContext(t), wsURL(addr), SessionOptions{}); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	url := serveOne(t, func(p *peer) {
		cmd := p.command()
		p.send(errorLine(cmd.ID, protocol.ErrPermissionDenied))
		p.expectClose()
	})
	if _, err := Connect(testContext(t), url, SessionOptions{}); !errors.Is(err, protocol.ErrPermissionDenied) {
		t.Fatalf("Connect refused: %v, want error 107", err)
	}
}

// subscribeReply answers a subscribe command with res.
func subscribeReply(p *peer, res protocol.SubscribeResult) protocol.SubscribeParams {
	cmd := p.command()
	var sp protocol.SubscribeParams
	if cmd.Method != protocol.MethodSubscribe || protocol.DecodeParams(cmd, &sp) != nil {
		p.t.Errorf("fake server: got %s %s, want subscribe", cmd.Method, cmd.Params)
	}
	p.send(replyLine(cmd.ID, res))
	return sp
}

// TestSessionGapAndDuplicates checks, against a fake server, that a live
// gap makes the session reconnect and recover, and that publications seen
// already are dropped.
func TestSessionGapAndDuplicates(t *testing.T) {
	since := make(chan *protocol.StreamPosition, 1)
	url := serveSeq(t,
		func(p *peer) {
			p.connect(25)
			subscribeReply(p, protocol.SubscribeResult{Offset: 5, Epoch: "E", Recoverable: true})
			p.send(pushLine(pubPush("news", 6)), pushLine(pubPush("news", 6)), pushLine(pubPush("news", 8)))
			if code := p.expectClose(); code != 1000 {
				p.t.Errorf("close code %d after a gap, want 1000", code)
			}
		},
		func(p *peer) {
			p.connect(25)
			sp := subscribeReply(p, protocol.SubscribeResult{Offset: 8, Epoch: "E", Recoverable: true, Recovered: true,
				Publications: []protocol.Publication{*pubPush("news", 6).Pub, *pubPush("news", 7).Pub, *pubPush("news", 8).Pub}})
			since <- sp.Since
			p.send(pushLine(pubPush("news", 8)), pushLine(pubPush("news", 9)))
			p.expectClose()
		})
	s := connect(t, url, fast)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, rec.waitPubs(t, 4), 6, 9)
	if got := <-since; got == nil || *got != (protocol.StreamPosition{Offset: 6, Epoch: "E"}) {
		t.Errorf("resubscribed since %+v, want 6/E", got)
	}
	s.Close()
	checkOffsets(t, ofType[PublicationEvent](rec), 6, 9)
}

// TestSessionResubscribeRefused checks that a temporary refusal to
// resubscribe makes the session reconnect, and a lasting one ends the
// subscription with OnUnsubscribed.
func TestSessionResubscribeRefused(t *testing.T) {
	url := serveSeq(t,
		func(p *peer) {
			p.connect(25)
			subscribeReply(p, protocol.SubscribeResult{Offset: 0, Epoch: "E"})
		},
		func(p *peer) {
			p.connect(25)
			cmd := p.command()
			p.send(errorLine(cmd.ID, protocol.ErrBrokerUnavailable))
			p.expectClose()
		},
		func(p *peer) {
			p.connect(25)
			cmd := p.command()
			p.send(errorLine(cmd.ID, protocol.ErrUnknownNamespace))
			p.expectClose()
		})
	var errs []error
	var mu sync.Mutex
	opts := fast
	opts.OnDisconnect = func(e DisconnectEvent) {
		mu.Lock()
		errs = append(errs, e.Err)
		mu.Unlock()
	}
	s := connect(t, url, opts)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "OnUnsubscribed", func() bool { return len(ofType[UnsubscribedEvent](rec)) == 1 })
	if e := ofType[UnsubscribedEvent](rec)[0]; e.Channel != "news" || !errors.Is(e.Err, protocol.ErrUnknownNamespace) {
		t.Errorf("OnUnsubscribed %+v", e)
	}
	s.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 2 || !errors.Is(errs[0], ErrConnectionLost) || !errors.Is(errs[1], protocol.ErrBrokerUnavailable) {
		t.Errorf("disconnects %v, want the lost connection, then the temporary refusal", errs)
	}
}

// TestSessionStopsWhenAdvised checks that the session follows the
// reconnect flag of the disconnect push, and the code of a bare close frame.
func TestSessionStopsWhenAdvised(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(p *peer)
		code uint16
	}{
		{"push", func(p *peer) {
			p.send(`{"push":"disconnect","code":3004,"reason":"go away","reconnect":false}`)
			p.closeWith(3004, "go away")
		}, 3004},
		{"close frame", func(p *peer) { p.closeWith(3501, "frame too large") }, 3501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveOne(t, func(p *peer) {
				p.connect(25)
				tc.send(p)
				p.expectClose()
			})
			events := make(chan DisconnectEvent, 10)
			opts := fast
			opts.OnDisconnect = func(e DisconnectEvent) { events <- e }
			s := connect(t, url, opts)
			select {
			case <-s.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the session did not end")
			}
			var d protocol.Disconnect
			if !errors.As(s.Err(), &d) || d.Code != tc.code {
				t.Errorf("Err() = %v, want disconnect %d", s.Err(), tc.code)
			}
			if e := <-events; e.Reconnect || !errors.Is(e.Err, s.Err()) {
				t.Errorf("OnDisconnect %+v", e)
			}
			if _, err := s.Publish(testContext(t), "news", 1); !errors.Is(err, s.Err()) {
				t.Errorf("Publish after the end: %v", err)
			}
		})
	}
}

// TestSessionDeliversBeforeEnd checks that events queued before a final
// disconnect reach the handlers before Done is closed.
func TestSessionDeliversBeforeEnd(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		subscribeReply(p, protocol.SubscribeResult{Offset: 0, Epoch: "E", Publications: nil})
		p.send(pushLine(pubPush("news", 1)), pushLine(pubPush("news", 2)),
			pushLine(protocol.DisconnectFrameTooLarge.Push()))
		p.closeWith(3501, "frame too large")
		p.expectClose()
	})
	s := connect(t, url, fast)
	gate := make(chan struct{})
	rec := &recorder{}
	h := rec.handlers()
	h.OnPublication = func(e PublicationEvent) {
		<-gate
		rec.add(e)
	}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{}, h); err != nil {
		t.Fatal(err)
	}
	close(gate)
	<-s.Done()
	checkOffsets(t, ofType[PublicationEvent](rec), 1, 2)
}

func TestBackoff(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: time.Second}
	for i, ceil := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		ceil *= time.Millisecond
		for range 50 {
			attempt := b.attempt
			if d := b.next(); d < 0 || d > ceil {
				t.Fatalf("attempt %d: delay %v, want at most %v", i, d, ceil)
			}
			b.attempt = attempt
		}
		b.attempt++
	}
	b.attempt = 1000 // no overflow
	if d := b.next(); d < 0 || d > time.Second {
		t.Fatalf("delay %v after many attempts", d)
	}
	b.reset()
	if b.attempt != 0 {
		t.Fatal("reset kept the count")
	}
	var sum time.Duration
	for range 1000 {
		b.attempt = 0
		sum += b.next()
	}
	if avg := sum / 1000; avg < 30*time.Millisecond || avg > 70*time.Millisecond {
		t.Errorf("average first delay %v, want about 50ms (jitter over [0, 100ms])", avg)
	}
}

// tokenServer runs a server that requires connection tokens, giving
// clients grace to refresh an expired one, and returns its address and a
// function that mints tokens for user alice.
func tokenServer(t *testing.T, grace time.Duration) (string, func(ttl time.Duration) string) {
	t.Helper()
	secret := []byte("a test secret of at least 32 bytes")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, redcast.Config{Verifier: v, RequireToken: true, RefreshGrace: grace})
	return addr, func(ttl time.Duration) string {
		tok, err := auth.Mint(secret, auth.MintOptions{User: "alice", TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// TestSessionRefreshesToken lets a connection token expire: the session
// gets a fresh one from SessionOptions.Token and refreshes in time, so the
// connection stays up.
func TestSessionRefreshesToken(t *testing.T) {
	addr, mint := tokenServer(t, 300*time.Millisecond)
	var calls, disconnects atomic.Int32
	opts := fast
	opts.Token = func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return mint(2 * time.Second), nil // exp has whole seconds: at least 1s left
		}
		return mint(time.Hour), nil
	}
	opts.OnDisconnect = func(DisconnectEvent) { disconnects.Add(1) }
	s := connect(t, wsURL(addr), opts)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), "news", SubscribeOptions{}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the token to be refreshed", func() bool { return calls.Load() >= 2 })
	// Commands are refused (error 115) until the fresh token is in.
	eventually(t, "a publication with the fresh token", func() bool {
		_, err := s.Publish(testContext(t), "news", 1)
		return err == nil
	})
	rec.waitPubs(t, 1)
	time.Sleep(400 * time.Millisecond) // past the grace: a failed refresh would disconnect now
	if n, c := disconnects.Load(), calls.Load(); n != 0 || c != 2 {
		t.Errorf("%d disconnects and %d calls of Token, want none and 2", n, c)
	}
}

// TestSessionTokenExpiredEnds checks that without SessionOptions.Token an
// expired connection token ends the session: the server disconnects it
// (3006) and refuses the same token again (error 115).
func TestSessionTokenExpiredEnds(t *testing.T) {
	addr, mint := tokenServer(t, 50*time.Millisecond)
	opts := fast
	opts.Conn.Token = mint(2 * time.Second)
	var codes []uint16
	var mu sync.Mutex
	opts.OnDisconnect = func(e DisconnectEvent) {
		var d protocol.Disconnect
		if errors.As(e.Err, &d) {
			mu.Lock()
			codes = append(codes, d.Code)
			mu.Unlock()
		}
	}
	s := connect(t, wsURL(addr), opts)
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the session outlived its token")
	}
	if !errors.Is(s.Err(), protocol.ErrTokenExpired) {
		t.Errorf("Err() = %v, want error 115", s.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(codes, []uint16{3006}) {
		t.Errorf("disconnect codes %v, want 3006", codes)
	}
}

// TestSessionSubscriptionToken checks that a subscription token is sent
// again when the session resubscribes after a reconnect.
func TestSessionSubscriptionToken(t *testing.T) {
	secret := []byte("a test secret of at least 32 bytes")
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ns := auth.DefaultNamespaces()
	ns["private"] = auth.Namespace{Subscribe: auth.SubscribeToken, Publish: true, HistorySize: 10}
	addr := startServer(t, redcast.Config{Verifier: v, Namespaces: ns})
	mint := func(o auth.MintOptions) string {
		tok, err := auth.Mint(secret, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	px := newProxy(t, addr)
	opts := fast
	opts.Conn.Token = mint(auth.MintOptions{User: "alice"})
	s := connect(t, px.url(), opts)
	rec := &recorder{}
	subToken := mint(auth.MintOptions{User: "alice", Channel: "private:x"})
	if _, err := s.Subscribe(testContext(t), "private:x", SubscribeOptions{Token: subToken}, rec.handlers()); err != nil {
		t.Fatal(err)
	}
	px.cut()
	subs := rec.waitSubscribed(t, 2)
	if !subs[1].Recovered {
		t.Errorf("resubscribe %+v, want recovered", subs[1])
	}
	if _, err := s.Publish(testContext(t), "private:x", "hi"); err != nil {
		t.Fatal(err)
	}
	rec.waitPubs(t, 1)
	if u := ofType[UnsubscribedEvent](rec); len(u) != 0 {
		t.Errorf("unsubscribed: %+v", u)
	}
}
