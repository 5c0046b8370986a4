package test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/wsframe"
	"github.com/redcast/redcast/protocol"
)

// bystander is a client that must not notice what other connections do
// wrong: check it after each violation.
type bystander struct {
	*conn
	pub *conn
	n   int
}

func newBystander(t *testing.T, base string) *bystander {
	t.Helper()
	b := &bystander{conn: dial(t, base, "bystander"), pub: dial(t, base, "bystander-pub")}
	if _, err := b.Subscribe(testContext(t), "bystander", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// check publishes one more message and waits for the bystander to get it.
func (b *bystander) check(t *testing.T) {
	t.Helper()
	if err := b.Err(); err != nil {
		t.Fatalf("bystander disconnected: %v", err)
	}
	if err := b.Ping(testContext(t)); err != nil {
		t.Fatalf("bystander ping: %v", err)
	}
	publishN(t, b.pub, "bystander", 1)
	b.n++
	checkOffsets(t, "bystander", b.waitPubs(t, "bystander", b.n), 1)
}

// TestFrameViolations sends frames the protocol forbids: each closes that
// connection with its disconnect code, and nobody else notices.
func TestFrameViolations(t *testing.T) {
	const maxFrame = 1024
	base, _ := startServer(t, redcast.Config{MaxFrameSize: maxFrame})
	by := newBystander(t, base)

	t.Run("frame of the maximum size is fine", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		line := `{"id":2,"method":"ping"}`
		c.send(line + strings.Repeat(" ", maxFrame-len(line)))
		decodeResult(t, c.reply(2), nil)
		by.check(t)
	})
	t.Run("oversized frame 3501", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		line := `{"id":2,"method":"ping"}`
		c.send(line + strings.Repeat(" ", maxFrame+1-len(line)))
		c.expectDisconnect(protocol.DisconnectFrameTooLarge.Code)
		by.check(t)
	})
	t.Run("huge frame 3501", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		// Only the header: the server must refuse before reading 1 GiB.
		h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: ws.NewMask(), Length: 1 << 30}
		if _, err := c.nc.Write(wsframe.AppendHeader(nil, h)); err != nil {
			t.Fatal(err)
		}
		c.expectDisconnect(protocol.DisconnectFrameTooLarge.Code)
		by.check(t)
	})
	t.Run("oversized before connect 3501", func(t *testing.T) {
		c := dialRaw(t, protocolURL(base))
		c.send(strings.Repeat(" ", maxFrame+1))
		c.expectDisconnect(protocol.DisconnectFrameTooLarge.Code)
	})
	t.Run("binary frame 3500", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		c.writeFrame(ws.OpBinary, true, []byte(`{"id":2,"method":"ping"}`))
		c.expectDisconnect(protocol.DisconnectBadFrame.Code)
		by.check(t)
	})
	t.Run("invalid UTF-8 3500", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		c.writeFrame(ws.OpText, true, []byte("{\"id\":2,\"method\":\"ping\",\"x\":\"\xff\xfe\"}"))
		c.expectDisconnect(protocol.DisconnectBadFrame.Code)
		by.check(t)
	})
	t.Run("unmasked frame 3500", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		if err := ws.WriteFrame(c.nc, ws.NewTextFrame([]byte(`{"id":2,"method":"ping"}`))); err != nil {
			t.Fatal(err)
		}
		c.expectDisconnect(protocol.DisconnectBadFrame.Code)
		by.check(t)
	})
	t.Run("malformed JSON 101 keeps the connection", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		c.send(`{"id":2,"method":`)
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		wantReplyError(t, "malformed JSON", m.Reply, 2, protocol.ErrBadRequest) // the id is read from the start of the line
		decodeResult(t, c.call(protocol.MethodPing, nil), nil)
		by.check(t)
	})
	t.Run("client ping answered with pong", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		c.writeFrame(ws.OpPing, true, []byte("hello?"))
		h, payload, err := c.readFrame()
		if err != nil || h.OpCode != ws.OpPong || string(payload) != "hello?" {
			t.Errorf("got %v %q %v, want a pong with the ping's payload", h.OpCode, payload, err)
		}
	})
	t.Run("fragmented message", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "")
		line := []byte(`{"id":7,"method":"ping"}`)
		c.writeFrame(ws.OpText, false, line[:10])
		c.writeFrame(ws.OpPing, true, []byte("between"))
		c.writeFrame(ws.OpContinuation, true, line[10:])
		decodeResult(t, c.reply(7), nil)
	})
}

// TestConnectTimeout checks that a connection that does not send connect in
// time is closed with 3502, and that one that did is not.
func TestConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	base, _ := startServer(t, redcast.Config{ConnectTimeout: timeout})
	good := dial(t, base, "good")
	rawGood, _ := dialRawConnected(t, base, "")

	silent := dialRaw(t, protocolURL(base))
	start := time.Now()
	silent.expectDisconnect(protocol.DisconnectNoConnect.Code)
	if d := time.Since(start); d < timeout/2 {
		t.Errorf("closed %v after opening, before the connect timeout %v", d, timeout)
	}

	// Commands other than connect do not count.
	busy := dialRaw(t, protocolURL(base))
	id, line := busy.command(protocol.MethodPing, nil)
	busy.send(line)
	wantReplyError(t, "ping before connect", busy.reply(id), id, protocol.ErrNotConnected)
	busy.expectDisconnect(protocol.DisconnectNoConnect.Code)

	if err := good.Ping(testContext(t)); err != nil {
		t.Errorf("connected client after the connect timeout: %v", err)
	}
	decodeResult(t, rawGood.call(protocol.MethodPing, nil), nil)
}

// TestPingTimeout: the server pings every PingInterval; a client that
// neither answers nor sends anything is closed with 3003 after PingInterval
// plus PongTimeout, while one that answers pings survives many intervals.
func TestPingTimeout(t *testing.T) {
	// The pong timeout is far longer than the interval: a loaded machine
	// may hold an answering client's pong back for a good part of a
	// second, and it must survive that.
	const (
		interval = 100 * time.Millisecond
		timeout  = time.Second
	)
	base, _ := startServer(t, redcast.Config{PingInterval: interval, PongTimeout: timeout})
	good := dial(t, base, "good")
	start := time.Now()

	// Its last read is the connect command, sent after this instant; the
	// instant its reply arrives would be later than the server's read.
	beforeConnect := time.Now()
	silent, _ := dialRawConnected(t, base, "")
	silent.expectDisconnect(protocol.DisconnectNoPong.Code)
	if silent.pings == 0 {
		t.Errorf("no ping frame before the ping timeout")
	}
	if d := time.Since(beforeConnect); d < interval+timeout {
		t.Errorf("closed with 3003 %v after its last command, before PingInterval plus PongTimeout (%v)", d, interval+timeout)
	}

	// The client package answers pings and sends nothing else.
	select {
	case <-good.Done():
		t.Fatalf("client that answers pings was disconnected: %v", good.Err())
	case <-time.After(time.Until(start.Add(3 * (interval + timeout)))):
	}
	if err := good.Ping(testContext(t)); err != nil {
		t.Fatalf("client that answers pings: %v", err)
	}
}

// TestPingFrames checks that the connect reply announces the ping interval
// in seconds and that ping frames come at that interval.
func TestPingFrames(t *testing.T) {
	const interval = time.Second
	base, _ := startServer(t, redcast.Config{PingInterval: interval})
	c := dialRaw(t, protocolURL(base))
	r := c.call(protocol.MethodConnect, nil)
	var res protocol.ConnectResult
	decodeResult(t, r, &res)
	if res.Ping != 1 {
		t.Errorf("connect result ping %d, want 1", res.Ping)
	}
	// Nothing else is due, so the next frames are pings.
	last := time.Now()
	for range 2 {
		h, payload, err := c.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if h.OpCode != ws.OpPing {
			t.Fatalf("got opcode %v, want a ping", h.OpCode)
		}
		if d := time.Since(last); d < interval/2 {
			t.Errorf("ping %v after the last, want about %v", d, interval)
		}
		last = time.Now()
		c.writeFrame(ws.OpPong, true, payload)
	}
}

// TestBatchedCommands sends several commands in one frame: they are handled
// in order and answered in order.
func TestBatchedCommands(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	c := dialRaw(t, protocolURL(base))
	var lines []string
	add := func(method string, params any) {
		_, line := c.command(method, params)
		lines = append(lines, line)
	}
	add(protocol.MethodConnect, protocol.ConnectParams{Name: "batch"})
	add(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "batch"})
	add(protocol.MethodPublish, protocol.PublishParams{Channel: "batch", Data: json.RawMessage(`{"text":"x"}`)})
	add(protocol.MethodHistory, protocol.HistoryParams{Channel: "batch"})
	add(protocol.MethodPresence, protocol.ChannelParams{Channel: "batch"})
	add(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "batch"}) // 108
	lines = append(lines, `{bad json`)                                        // 101, id 0
	add(protocol.MethodPing, nil)
	add(protocol.MethodUnsubscribe, protocol.ChannelParams{Channel: "batch"})
	c.send(lines...)

	wantIDs := []uint32{1, 2, 3, 4, 5, 6, 0, 7, 8}
	var replies []protocol.Reply
	pubAt := -1 // number of replies before the publication push
	for len(replies) < len(wantIDs) {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if m.IsPush() {
			if m.Push.Type == protocol.PushPublication {
				pubAt = len(replies)
			}
			continue
		}
		if want := wantIDs[len(replies)]; m.ID != want {
			t.Fatalf("reply %d has id %d, want %d (replies in command order)", len(replies), m.ID, want)
		}
		replies = append(replies, m.Reply)
	}
	var client string
	var cres protocol.ConnectResult
	decodeResult(t, replies[0], &cres)
	client = cres.Client
	var sres protocol.SubscribeResult
	decodeResult(t, replies[1], &sres)
	if sres.Offset != 0 {
		t.Errorf("subscribe result offset %d, want 0", sres.Offset)
	}
	var pos protocol.StreamPosition
	decodeResult(t, replies[2], &pos)
	if pos.Offset != 1 {
		t.Errorf("publish offset %d, want 1", pos.Offset)
	}
	var hres protocol.HistoryResult
	decodeResult(t, replies[3], &hres)
	if len(hres.Publications) != 1 || hres.Offset != 1 {
		t.Errorf("history after the publish in the same frame: %+v", hres)
	}
	var pres protocol.PresenceResult
	decodeResult(t, replies[4], &pres)
	if len(pres.Clients) != 1 || pres.Clients[0].Client != client {
		t.Errorf("presence after the subscribe in the same frame: %+v, want only %s", pres.Clients, client)
	}
	wantReplyError(t, "second subscribe", replies[5], 6, protocol.ErrAlreadySubscribed)
	wantReplyError(t, "malformed line", replies[6], 0, protocol.ErrBadRequest)
	decodeResult(t, replies[7], nil)
	decodeResult(t, replies[8], nil)
	if pubAt >= 0 && (pubAt < 2 || pubAt > 8) {
		t.Errorf("publication push after %d replies: want it after the subscribe reply and before the unsubscribe reply", pubAt)
	}
}
