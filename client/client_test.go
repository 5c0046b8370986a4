package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, url string, opts Options) *Client {
	t.Helper()
	c, err := Dial(testContext(t), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialSendsConnect(t *testing.T) {
	got := make(chan protocol.ConnectParams, 1)
	url := serveOne(t, func(p *peer) {
		got <- p.connect(25)
		p.expectClose()
	})
	c := dial(t, url, Options{Name: "alice", Token: "secret"})
	if c.ID() != "C1" {
		t.Errorf("ID() = %q, want C1", c.ID())
	}
	if params := <-got; params.Name != "alice" || params.Token != "secret" {
		t.Errorf("connect params %+v, want name alice and token secret", params)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v on a live connection", err)
	}
}

func TestDialConnectError(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		cmd := p.command()
		p.send(errorLine(cmd.ID, protocol.ErrBadRequest.WithMessage("name too long")))
		p.expectClose()
	})
	_, err := Dial(testContext(t), url, Options{})
	if !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("Dial error %v, want error 101", err)
	}
}

func TestDialContextCancelled(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.command() // never answered
		p.expectClose()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, url, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error %v, want context.DeadlineExceeded", err)
	}
}

func TestCommandsAndResults(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		for range 6 {
			cmd := p.command()
			switch cmd.Method {
			case protocol.MethodSubscribe:
				var sp protocol.SubscribeParams
				_ = protocol.DecodeParams(cmd, &sp)
				if sp.Channel != "news" || sp.History != 3 || sp.Since == nil || *sp.Since != (protocol.StreamPosition{Offset: 4, Epoch: "E"}) {
					p.t.Errorf("subscribe params %+v", sp)
				}
				p.send(replyLine(cmd.ID, protocol.SubscribeResult{Offset: 5, Epoch: "E", Recoverable: true, Recovered: true,
					Publications: []protocol.Publication{{Offset: 5, Data: json.RawMessage(`"x"`)}}}))
			case protocol.MethodPublish:
				var pp protocol.PublishParams
				_ = protocol.DecodeParams(cmd, &pp)
				if pp.Channel != "news" || string(pp.Data) != `{"text":"hi"}` {
					p.t.Errorf("publish params %+v (data %s)", pp, pp.Data)
				}
				p.send(replyLine(cmd.ID, protocol.StreamPosition{Offset: 6, Epoch: "E"}))
			case protocol.MethodHistory:
				var hp protocol.HistoryParams
				_ = protocol.DecodeParams(cmd, &hp)
				if hp.Limit != 2 {
					p.t.Errorf("history params %+v", hp)
				}
				p.send(replyLine(cmd.ID, protocol.HistoryResult{Offset: 6, Epoch: "E", Publications: []protocol.Publication{{Offset: 5}, {Offset: 6}}}))
			case protocol.MethodPresence:
				p.send(replyLine(cmd.ID, protocol.PresenceResult{Clients: []protocol.ClientInfo{{Client: "C1"}}}))
			case protocol.MethodUnsubscribe, protocol.MethodPing:
				if cmd.Method == protocol.MethodPing && len(cmd.Params) != 0 {
					p.t.Errorf("ping has params %s", cmd.Params)
				}
				p.send(replyLine(cmd.ID, struct{}{}))
			}
		}
		p.expectClose()
	})
	ctx := testContext(t)
	c := dial(t, url, Options{})

	res, err := c.Subscribe(ctx, "news", SubscribeOptions{Since: &protocol.StreamPosition{Offset: 4, Epoch: "E"}, History: 3})
	if err != nil || res.Offset != 5 || !res.Recovered || len(res.Publications) != 1 {
		t.Fatalf("Subscribe = %+v, %v", res, err)
	}
	pos, err := c.Publish(ctx, "news", json.RawMessage(`{"text":"hi"}`))
	if err != nil || pos != (protocol.StreamPosition{Offset: 6, Epoch: "E"}) {
		t.Fatalf("Publish = %+v, %v", pos, err)
	}
	hist, err := c.History(ctx, "news", HistoryOptions{Limit: 2})
	if err != nil || len(hist.Publications) != 2 || hist.Offset != 6 {
		t.Fatalf("History = %+v, %v", hist, err)
	}
	clients, err := c.Presence(ctx, "news")
	if err != nil || len(clients) != 1 || clients[0].Client != "C1" {
		t.Fatalf("Presence = %+v, %v", clients, err)
	}
	if err := c.Unsubscribe(ctx, "news"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestErrorReply(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		cmd := p.command()
		p.send(errorLine(cmd.ID, protocol.ErrAlreadySubscribed.WithMessage("already subscribed to news")))
		cmd = p.command()
		p.send(replyLine(cmd.ID, struct{}{}))
		p.expectClose()
	})
	ctx := testContext(t)
	c := dial(t, url, Options{})
	_, err := c.Subscribe(ctx, "news", SubscribeOptions{})
	if !errors.Is(err, protocol.ErrAlreadySubscribed) {
		t.Fatalf("Subscribe error %v, want error 108", err)
	}
	var perr *protocol.Error
	if !errors.As(err, &perr) || perr.Message != "already subscribed to news" {
		t.Fatalf("Subscribe error %#v, want the server's *protocol.Error", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping after an error reply: %v", err)
	}
}

// TestConcurrentCalls checks that concurrent commands are packed into frames
// no larger than MaxFrameSize and that replies in any order reach the right
// callers.
func TestConcurrentCalls(t *testing.T) {
	const calls = 50
	const maxFrame = 300
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		var ids []uint32
		frames := 0
		for len(ids) < calls {
			h, payload, err := p.readFrame()
			if err != nil {
				p.t.Errorf("fake server: %v", err)
				return
			}
			if h.Length > maxFrame {
				p.t.Errorf("frame of %d bytes, MaxFrameSize is %d", h.Length, maxFrame)
			}
			frames++
			protocol.Lines(payload, func(line []byte) bool {
				cmd, err := protocol.DecodeCommand(line)
				if err != nil {
					p.t.Errorf("bad command %q: %v", line, err)
				}
				ids = append(ids, cmd.ID)
				return true
			})
		}
		if frames == calls {
			p.t.Logf("no two commands shared a frame")
		}
		// Answer in reverse order, several replies per frame, each with
		// the command id as the offset.
		var lines []string
		for i := len(ids) - 1; i >= 0; i-- {
			lines = append(lines, replyLine(ids[i], protocol.StreamPosition{Offset: uint64(ids[i])}))
		}
		p.send(lines[:calls/2]...)
		p.send(lines[calls/2:]...)
		p.expectClose()
	})
	ctx := testContext(t)
	c := dial(t, url, Options{MaxFrameSize: maxFrame})
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			pos, err := c.Publish(ctx, "news", strings.Repeat("x", 40))
			if err != nil {
				t.Errorf("Publish: %v", err)
			}
			if pos.Offset == 0 {
				t.Errorf("Publish got offset 0")
			}
		})
	}
	wg.Wait()
}

func TestCommandTooLarge(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		cmd := p.command()
		if cmd.Method != protocol.MethodPing {
			p.t.Errorf("got %s, want only the ping", cmd.Method)
		}
		p.send(replyLine(cmd.ID, struct{}{}))
		p.expectClose()
	})
	ctx := testContext(t)
	c := dial(t, url, Options{MaxFrameSize: 1000})
	_, err := c.Publish(ctx, "news", strings.Repeat("x", 1000))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Publish error %v, want ErrFrameTooLarge", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestPushesInOrder checks that pushes reach OnPush in order, and before
// the reply that followed them in the same frame.
func TestPushesInOrder(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		cmd := p.command()
		p.send(pushLine(pubPush("news", 1)), pushLine(pubPush("news", 2)), replyLine(cmd.ID, struct{}{}), pushLine(pubPush("news", 3)))
		p.send(pushLine(&protocol.Push{Type: protocol.PushJoin, Channel: "news", Client: &protocol.ClientInfo{Client: "C2"}}))
		p.expectClose()
	})
	var mu sync.Mutex
	var got []*protocol.Push
	c := dial(t, url, Options{OnPush: func(p *protocol.Push) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}})
	if err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) < 2 || got[0].Pub.Offset != 1 || got[1].Pub.Offset != 2 {
		t.Errorf("before the reply OnPush got %d pushes, want offsets 1 and 2 first", len(got))
	}
	mu.Unlock()
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 4
	})
	if got[2].Pub.Offset != 3 || got[3].Type != protocol.PushJoin || got[3].Client.Client != "C2" {
		t.Errorf("pushes 3 and 4: %+v %+v", got[2], got[3])
	}
}

func TestDisconnectPush(t *testing.T) {
	echo := make(chan ws.StatusCode, 1)
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.command() // left pending
		p.send(pushLine(protocol.DisconnectShutdown.Push()))
		p.closeWith(3001, "server shutting down")
		echo <- p.expectClose()
	})
	var pushes []*protocol.Push
	c := dial(t, url, Options{OnPush: func(p *protocol.Push) { pushes = append(pushes, p) }})
	_, err := c.Subscribe(testContext(t), "news", SubscribeOptions{})
	wantDisconnect(t, err, 3001)
	<-c.Done()
	wantDisconnect(t, c.Err(), 3001)
	if len(pushes) != 1 || pushes[0].Type != protocol.PushDisconnect || !pushes[0].Reconnect {
		t.Errorf("OnPush got %+v, want the disconnect push", pushes)
	}
	if code := <-echo; code != 3001 {
		t.Errorf("client echoed close code %d, want 3001", code)
	}
	if err := c.Ping(testContext(t)); !errors.Is(err, c.Err()) {
		t.Errorf("Ping after disconnect: %v, want %v", err, c.Err())
	}
}

func TestCloseFrameWithoutPush(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.closeWith(3502, "no connect in time")
		p.expectClose()
	})
	c := dial(t, url, Options{})
	<-c.Done()
	wantDisconnect(t, c.Err(), 3502)
	var d protocol.Disconnect
	errors.As(c.Err(), &d)
	if d.Reason != "no connect in time" || d.Reconnect() {
		t.Errorf("disconnect %+v", d)
	}
}

func TestConnectionLost(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.command()
		p.conn.Close()
	})
	c := dial(t, url, Options{})
	err := c.Ping(testContext(t))
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Ping error %v, want ErrConnectionLost", err)
	}
	<-c.Done()
}

func TestBinaryFrameFromServer(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.writeFrame(ws.OpBinary, []byte("??"))
		if code := p.expectClose(); code != ws.StatusUnsupportedData {
			p.t.Errorf("close code %d, want 1003", code)
		}
	})
	c := dial(t, url, Options{})
	<-c.Done()
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Err() = %v, want ErrProtocol", c.Err())
	}
}

func TestContextCancelledCall(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		var cmds []protocol.Command
		for len(cmds) < 2 {
			cmds = append(cmds, p.commands()...)
		}
		// The reply to the abandoned command must not reach the next one.
		p.send(replyLine(cmds[0].ID, protocol.StreamPosition{Offset: 1}), replyLine(cmds[1].ID, protocol.StreamPosition{Offset: 2}))
		p.expectClose()
	})
	c := dial(t, url, Options{})
	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		waitFor(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.pending) == 1
		})
		cancel()
	}()
	if _, err := c.Publish(ctx, "news", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish error %v, want context.Canceled", err)
	}
	pos, err := c.Publish(testContext(t), "news", 2)
	if err != nil || pos.Offset != 2 {
		t.Fatalf("Publish = %+v, %v; want offset 2", pos, err)
	}
}

func TestClose(t *testing.T) {
	code := make(chan ws.StatusCode, 1)
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.command() // left pending
		code <- p.expectClose()
	})
	c := dial(t, url, Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.History(testContext(t), "news", HistoryOptions{})
		errc <- err
	}()
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.pending) == 1
	})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("pending call: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	if err := c.Ping(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	if got := <-code; got != ws.StatusNormalClosure {
		t.Errorf("close code %d, want 1000", got)
	}
}

func TestAnswersPing(t *testing.T) {
	ponged := make(chan struct{})
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.writeFrame(ws.OpPing, []byte("are you there"))
		h, payload, err := p.readFrame()
		if err != nil || h.OpCode != ws.OpPong || string(payload) != "are you there" {
			p.t.Errorf("got %v %q %v, want a pong with the ping's payload", h.OpCode, payload, err)
		}
		close(ponged)
		p.expectClose()
	})
	dial(t, url, Options{})
	<-ponged
}

// TestFragmentedMessage checks that a message split over frames, with a
// ping between them, is read whole and the ping answered.
func TestFragmentedMessage(t *testing.T) {
	ponged := make(chan struct{})
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		cmd := p.command()
		line := []byte(replyLine(cmd.ID, protocol.StreamPosition{Offset: 7, Epoch: "E"}))
		p.write(wsframe.AppendFrame(nil, ws.Header{OpCode: ws.OpText}, line[:5]))
		p.writeFrame(ws.OpPing, nil)
		p.write(wsframe.AppendFrame(nil, ws.Header{Fin: true, OpCode: ws.OpContinuation}, line[5:]))
		if h, _, err := p.readFrame(); err != nil || h.OpCode != ws.OpPong {
			p.t.Errorf("got %v %v, want a pong", h.OpCode, err)
		}
		close(ponged)
		p.expectClose()
	})
	c := dial(t, url, Options{})
	pos, err := c.Publish(testContext(t), "news", 1)
	if err != nil || pos.Offset != 7 {
		t.Fatalf("Publish = %+v, %v", pos, err)
	}
	<-ponged
}

// TestPingTimeout checks that a client that hears nothing from the server
// for the ping interval plus PingTimeout gives up.
func TestPingTimeout(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(1)
		_, _, _ = p.readFrame() // whatever comes, until the client goes
	})
	c := dial(t, url, Options{PingTimeout: 100 * time.Millisecond})
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client still up 10s after the server went silent")
	}
	if !errors.Is(c.Err(), ErrConnectionLost) {
		t.Fatalf("Err() = %v, want ErrConnectionLost", c.Err())
	}
}

func TestMalformedLineFromServer(t *testing.T) {
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		p.send("{not json")
		p.expectClose()
	})
	c := dial(t, url, Options{})
	<-c.Done()
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Fatalf("Err() = %v, want ErrProtocol", c.Err())
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition not met within 10s")
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPublishWritesDataAsIs checks that commands are not HTML-escaped, so
// that data reaches the server as written.
func TestPublishWritesDataAsIs(t *testing.T) {
	got := make(chan string, 2)
	url := serveOne(t, func(p *peer) {
		p.connect(25)
		for range 2 {
			cmd := p.command()
			var pp protocol.PublishParams
			_ = protocol.DecodeParams(cmd, &pp)
			got <- string(pp.Data)
			p.send(replyLine(cmd.ID, protocol.StreamPosition{Offset: 1, Epoch: "E"}))
		}
		p.expectClose()
	})
	c := dial(t, url, Options{})
	if _, err := c.Publish(testContext(t), "news", "<b> & </b>"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(testContext(t), "news", json.RawMessage(`{"html":"<i>"}`)); err != nil {
		t.Fatal(err)
	}
	if a, b := <-got, <-got; a != `"<b> & </b>"` || b != `{"html":"<i>"}` {
		t.Errorf("data sent: %s and %s", a, b)
	}
}
