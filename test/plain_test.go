package test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// plainURL is the plain-mode URL of room with the query (may be empty).
func plainURL(base, room, query string) string {
	u := base + "/rooms/" + url.PathEscape(room)
	if query != "" {
		u += "?" + query
	}
	return u
}

// dialPlain joins room in plain mode; query holds name and echo.
func dialPlain(t *testing.T, base, room, query string) *rawConn {
	t.Helper()
	return dialRaw(t, plainURL(base, room, query))
}

// readText returns the next frame of a plain client, which must be text.
func (c *rawConn) readText() string {
	c.t.Helper()
	op, payload, err := c.nextData()
	if err != nil {
		c.t.Fatalf("plain client: %v", err)
	}
	if op != ws.OpText {
		c.t.Fatalf("plain client got opcode %v, want text", op)
	}
	return string(payload)
}

// expectTexts reads len(want) frames and checks they are want, in order.
func (c *rawConn) expectTexts(who string, want ...string) {
	c.t.Helper()
	for i, w := range want {
		if got := c.readText(); got != w {
			c.t.Fatalf("%s: frame %d is %.80q, want %.80q", who, i, got, w)
		}
	}
}

func TestPlainMode(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	web := dial(t, base, "web")
	for _, ch := range []string{"chat:r1", "chat:r2"} {
		if _, err := web.Subscribe(ctx, ch, client.SubscribeOptions{JoinLeave: true}); err != nil {
			t.Fatal(err)
		}
	}
	// History is not sent to plain clients.
	if _, err := web.Publish(ctx, "chat:r1", map[string]string{"text": "before"}); err != nil {
		t.Fatal(err)
	}

	bob := dialPlain(t, base, "r1", "name=bob")
	carol := dialPlain(t, base, "r1", "name=carol")
	erin := dialPlain(t, base, "r1", "name=erin&echo=1")
	dave := dialPlain(t, base, "r2", "name=dave")
	waitPresence(t, web, "chat:r1", "web", "bob", "carol", "erin")
	waitPresence(t, web, "chat:r2", "web", "dave")

	// A plain client's text reaches the others in its room, not itself.
	bob.send("hello")
	carol.expectTexts("carol", "hello")
	erin.expectTexts("erin", "hello")
	p := web.waitPubs(t, "chat:r1", 2)[1]
	if !jsonEqual(p.Data, []byte(`{"text":"hello"}`)) || p.From == nil || infoName(*p.From) != "bob" {
		t.Errorf("full-protocol client got %s from %+v, want {\"text\":\"hello\"} from bob", p.Data, p.From)
	}

	// echo=1 receives its own messages.
	erin.send("yo")
	erin.expectTexts("erin", "yo")
	carol.expectTexts("carol", "yo")
	bob.expectTexts("bob", "yo") // and not his own "hello" first

	// Full-protocol publications: the text, or the data as JSON.
	for _, data := range []string{`{"text":"from web"}`, `{"n":1}`, `"just a string"`, `{"text":5}`, `[1,2]`} {
		if _, err := web.Publish(ctx, "chat:r1", json.RawMessage(data)); err != nil {
			t.Fatal(err)
		}
	}
	wantWeb := []string{"from web", `{"n":1}`, `"just a string"`, `{"text":5}`, `[1,2]`}
	for _, c := range []*rawConn{bob, carol, erin} {
		for _, w := range wantWeb {
			if got := c.readText(); got != w && !jsonEqual([]byte(got), []byte(w)) {
				t.Fatalf("plain client got %q, want %q", got, w)
			}
		}
	}

	// Rooms are separate: dave's first frame is from r2; r2's text does
	// not reach r1.
	if _, err := web.Publish(ctx, "chat:r2", map[string]string{"text": "r2 only"}); err != nil {
		t.Fatal(err)
	}
	dave.expectTexts("dave", "r2 only")
	dave.send("from dave")
	if p := web.waitPubs(t, "chat:r2", 2)[1]; !jsonEqual(p.Data, []byte(`{"text":"from dave"}`)) || infoName(*p.From) != "dave" {
		t.Errorf("r2 publication %s from %+v", p.Data, p.From)
	}
	carol.send("marker")
	bob.expectTexts("bob", "marker") // not "r2 only" or "from dave" first
	erin.expectTexts("erin", "marker")

	// Plain clients leave presence when they go.
	carol.nc.Close()
	waitPresence(t, web, "chat:r1", "web", "bob", "erin")
	for _, p := range web.ofType(protocol.PushJoin, "chat:r1") {
		if infoName(*p.Client) == "carol" {
			web.waitPush(t, protocol.PushLeave, "chat:r1", p.Client.Client)
		}
	}
}

func TestPlainModeLimits(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	web := dial(t, base, "web")
	if _, err := web.Subscribe(ctx, "chat:lim", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("invalid rooms 400", func(t *testing.T) {
		for _, room := range []string{"has space", "a!b", "é", "a\"b", strings.Repeat("r", protocol.MaxChannelLength-len("chat:")+1)} {
			status, err := dialStatus(ctx, plainURL(base, room, "name=x"))
			if err != nil {
				t.Errorf("room %q: %v", room, err)
			} else if status != 400 {
				t.Errorf("room %.20q: upgrade status %d, want 400", room, status)
			}
		}
		longest := strings.Repeat("r", protocol.MaxChannelLength-len("chat:"))
		if status, err := dialStatus(ctx, plainURL(base, longest, "")); err != nil || status != 0 {
			t.Errorf("room of 250 bytes: status %d, %v; want accepted", status, err)
		}
	})

	t.Run("text of 16 KiB is published", func(t *testing.T) {
		c := dialPlain(t, base, "lim", "name=big")
		waitPresence(t, web, "chat:lim", "web", "big")
		text := strings.Repeat("z", 16<<10)
		c.send(text)
		pubs := web.waitPubs(t, "chat:lim", 1)
		var d struct{ Text string }
		if err := json.Unmarshal(pubs[0].Data, &d); err != nil || d.Text != text {
			t.Errorf("16 KiB plain text arrived as %.60s… (%d bytes), %v", pubs[0].Data, len(pubs[0].Data), err)
		}
	})
	t.Run("binary frame 1003", func(t *testing.T) {
		c := dialPlain(t, base, "lim", "name=bin")
		c.writeFrame(ws.OpBinary, true, []byte("hello"))
		c.expectCloseCode(ws.StatusUnsupportedData)
	})
	t.Run("oversized frame 1009", func(t *testing.T) {
		c := dialPlain(t, base, "lim", "name=huge")
		c.send(strings.Repeat("z", 16<<10+1))
		c.expectCloseCode(ws.StatusMessageTooBig)
	})

	// Nothing of the refused frames was published.
	publishN(t, web, "chat:lim", 1)
	pubs := web.waitPubs(t, "chat:lim", 2)
	if len(pubs) != 2 || !jsonEqual(pubs[1].Data, []byte(`{"n":1}`)) {
		t.Errorf("publications after the refused frames: %v", offsets(pubs))
	}
}

// TestPlainNoEchoWithoutAttachInfo: whether a plain client hears its own
// messages must not depend on whether the namespace shows the publisher to
// others. With attach_info off, the sender still gets no echo (and echo=1
// still gets one), on the memory broker and through Redis.
func TestPlainNoEchoWithoutAttachInfo(t *testing.T) {
	// Presence on, so that the test can wait until both are subscribed
	// (a plain client subscribes after its upgrade).
	ns := map[string]auth.Namespace{"chat": {Anonymous: true, Publish: true, HistorySize: 10, Presence: true}}
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			cfg := redcast.Config{Namespaces: ns}
			var base string
			if name == "redis" {
				srv := testredis.Start(t, testredis.Options{})
				base = startRedisNodesWith(t, srv.URL(), 1, server.Config{Node: cfg})[0].base
			} else {
				base, _ = startServer(t, cfg)
			}
			bob := dialPlain(t, base, "quiet", "name=bob")
			erin := dialPlain(t, base, "quiet", "name=erin&echo=1")
			waitPresence(t, dial(t, base, "watcher"), "chat:quiet", "bob", "erin")
			bob.send("one")
			erin.expectTexts("erin", "one")
			bob.send("two")
			erin.expectTexts("erin", "two")
			erin.send("three")
			erin.expectTexts("erin", "three")
			// bob's first frames are erin's ("zero" if he was in the room
			// by then), never his own.
			if got := bob.readText(); got != "zero" && got != "three" {
				t.Fatalf("bob: first frame %q, want erin's zero or three", got)
			} else if got == "zero" {
				bob.expectTexts("bob", "three")
			}
		})
	}
}
