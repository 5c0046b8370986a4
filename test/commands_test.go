package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// bareConfig has, besides the default namespaces, "bare" with neither
// history nor presence.
func bareConfig() redcast.Config {
	return redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"bare": {}})}
}

func TestConnect(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	c := dialRaw(t, protocolURL(base))
	r := c.call(protocol.MethodConnect, protocol.ConnectParams{Name: "alice"})
	var res protocol.ConnectResult
	decodeResult(t, r, &res)
	if res.Client == "" || res.Version == "" {
		t.Errorf("connect result %s: want a client id and a version", r.Result)
	}
	if res.Ping != 25 {
		t.Errorf("connect result ping %d, want the default ping interval 25", res.Ping)
	}

	// The client package gets a different id for another connection.
	other := dial(t, base, "bob")
	if other.ID() == "" || other.ID() == res.Client {
		t.Errorf("second connection id %q, first %q: want distinct ids", other.ID(), res.Client)
	}
}

func TestConnectErrors(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})

	t.Run("before connect 103", func(t *testing.T) {
		c := dialRaw(t, protocolURL(base))
		for _, method := range []string{protocol.MethodPing, protocol.MethodSubscribe, protocol.MethodPublish} {
			id, line := c.command(method, protocol.ChannelParams{Channel: "news"})
			c.send(line)
			wantReplyError(t, method+" before connect", c.reply(id), id, protocol.ErrNotConnected)
		}
		c.connect("late") // the connection stays usable
		decodeResult(t, c.call(protocol.MethodPing, nil), nil)
	})

	t.Run("second connect 104", func(t *testing.T) {
		c, _ := dialRawConnected(t, base, "alice")
		id, line := c.command(protocol.MethodConnect, protocol.ConnectParams{Name: "again"})
		c.send(line)
		wantReplyError(t, "second connect", c.reply(id), id, protocol.ErrAlreadyConnected)
		decodeResult(t, c.call(protocol.MethodPing, nil), nil)
	})

	t.Run("name too long 101", func(t *testing.T) {
		c := dialRaw(t, protocolURL(base))
		id, line := c.command(protocol.MethodConnect, protocol.ConnectParams{Name: strings.Repeat("n", protocol.MaxNameLength+1)})
		c.send(line)
		wantReplyError(t, "connect with a 65-byte name", c.reply(id), id, protocol.ErrBadRequest)
		c.connect(strings.Repeat("n", protocol.MaxNameLength)) // 64 bytes is fine
	})
}

// TestMalformedLines sends lines that are not valid commands: each is
// answered with 101 (102 for an unknown method), with the command's id when
// it can be read and 0 otherwise, and the connection keeps working.
func TestMalformedLines(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	c, _ := dialRawConnected(t, base, "")
	cases := []struct {
		line string
		id   uint32
		code *protocol.Error
	}{
		{line: `{not json`, id: 0, code: protocol.ErrBadRequest},
		{line: `["ping"]`, id: 0, code: protocol.ErrBadRequest},
		{line: `{"method":"ping"}`, id: 0, code: protocol.ErrBadRequest},
		{line: `{"id":0,"method":"ping"}`, id: 0, code: protocol.ErrBadRequest},
		{line: `{"id":-1,"method":"ping"}`, id: 0, code: protocol.ErrBadRequest},
		{line: `{"id":4294967296,"method":"ping"}`, id: 0, code: protocol.ErrBadRequest},
		{line: `{"id":71}`, id: 71, code: protocol.ErrBadRequest},
		{line: `{"id":72,"method":7}`, id: 72, code: protocol.ErrBadRequest},
		{line: `{"id":73,"method":"ping","params":[1]}`, id: 73, code: protocol.ErrBadRequest},
		{line: `{"id":74,"method":"subscribe","params":{"channel":5}}`, id: 74, code: protocol.ErrBadRequest},
		{line: `{"id":75,"method":"publish","params":{"channel":"news"}}`, id: 75, code: protocol.ErrBadRequest},
		{line: `{"id":76,"method":"history","params":{"channel":"news","limit":"ten"}}`, id: 76, code: protocol.ErrBadRequest},
		{line: `{"id":77,"method":"frobnicate"}`, id: 77, code: protocol.ErrUnknownMethod},
		{line: `{"id":78,"method":"PING"}`, id: 78, code: protocol.ErrUnknownMethod},
	}
	for _, tc := range cases {
		c.send(tc.line)
		m, err := c.next()
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		wantReplyError(t, tc.line, m.Reply, tc.id, tc.code)
		decodeResult(t, c.call(protocol.MethodPing, nil), nil)
	}

	// Unknown fields are ignored; a 4294967295 id is valid.
	c.send(`{"id":4294967295,"method":"ping","extra":true,"params":{"whatever":1}}`)
	if r := c.reply(4294967295); r.Error != nil {
		t.Errorf("ping with unknown fields: %v", r.Error)
	}
}

func TestSubscribe(t *testing.T) {
	base, _ := startServer(t, bareConfig())
	ctx := testContext(t)
	pub := dial(t, base, "pub")
	positions := publishN(t, pub, "news", 5)
	epoch := positions[0].Epoch
	if epoch == "" {
		t.Fatal("publish result has no epoch")
	}
	for i, pos := range positions {
		if pos.Offset != uint64(i+1) || pos.Epoch != epoch {
			t.Fatalf("publish %d got position %+v, want offset %d in epoch %s", i+1, pos, i+1, epoch)
		}
	}

	sub := dial(t, base, "sub")
	res, err := sub.Subscribe(ctx, "news", client.SubscribeOptions{History: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != 5 || res.Epoch != epoch || !res.Recoverable || res.Recovered {
		t.Errorf("subscribe result %+v, want offset 5, epoch %s, recoverable", res, epoch)
	}
	checkOffsets(t, "subscribe history 3", res.Publications, 3)
	if len(res.Publications) != 3 {
		t.Errorf("subscribe with history 3 returned %d publications", len(res.Publications))
	}

	// Without history: no publications; live ones follow.
	res, err = sub.Subscribe(ctx, "other", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != 0 || len(res.Publications) != 0 || !res.Recoverable {
		t.Errorf("subscribe to an empty channel: %+v", res)
	}
	publishN(t, pub, "news", 1)
	checkOffsets(t, "live after subscribe", sub.waitPubs(t, "news", 1), 6)

	// A namespace without history is not recoverable.
	res, err = sub.Subscribe(ctx, "bare:x", client.SubscribeOptions{History: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recoverable || len(res.Publications) != 0 {
		t.Errorf("subscribe to a namespace without history: %+v, want not recoverable", res)
	}
}

func TestSubscribeErrors(t *testing.T) {
	cfg := bareConfig()
	cfg.MaxChannels = 3
	base, _ := startServer(t, cfg)
	ctx := testContext(t)
	c := dial(t, base, "")

	for _, ch := range []string{"", "has space", "new\nline", "é", "a\"b", "a?b", strings.Repeat("x", protocol.MaxChannelLength+1)} {
		_, err := c.Subscribe(ctx, ch, client.SubscribeOptions{})
		wantError(t, "subscribe "+ch, err, protocol.ErrInvalidChannel)
	}
	// Every allowed character, and the longest name, are valid ('#' makes
	// a user-limited channel, see TestUserLimitedChannels).
	for _, ch := range []string{"chat:aZ09_-.:@/=,~", strings.Repeat("y", protocol.MaxChannelLength)} {
		if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Errorf("subscribe %s: %v", ch, err)
		}
		if err := c.Unsubscribe(ctx, ch); err != nil {
			t.Errorf("unsubscribe %s: %v", ch, err)
		}
	}
	_, err := c.Subscribe(ctx, "nope:x", client.SubscribeOptions{})
	wantError(t, "subscribe in an unknown namespace", err, protocol.ErrUnknownNamespace)

	if _, err := c.Subscribe(ctx, "a", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscribe(ctx, "a", client.SubscribeOptions{})
	wantError(t, "second subscribe", err, protocol.ErrAlreadySubscribed)

	for _, ch := range []string{"b", "chat:c"} {
		if _, err := c.Subscribe(ctx, ch, client.SubscribeOptions{}); err != nil {
			t.Fatalf("subscribe %s (within MaxChannels 3): %v", ch, err)
		}
	}
	_, err = c.Subscribe(ctx, "d", client.SubscribeOptions{})
	wantError(t, "subscribe beyond MaxChannels", err, protocol.ErrLimitExceeded)
	// Unsubscribing frees a slot.
	if err := c.Unsubscribe(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "d", client.SubscribeOptions{}); err != nil {
		t.Errorf("subscribe after unsubscribe freed a slot: %v", err)
	}
	// The limit is per connection.
	other := dial(t, base, "")
	if _, err := other.Subscribe(ctx, "e", client.SubscribeOptions{}); err != nil {
		t.Errorf("another connection's subscribe: %v", err)
	}
}

func TestSubscribeHistoryLimit(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	c, _ := dialRawConnected(t, base, "")
	r := c.call(protocol.MethodSubscribe, map[string]any{"channel": "news", "history": redcast.MaxHistoryLimit + 1})
	if r.Error == nil || r.Error.Code != protocol.ErrBadRequest.Code {
		t.Errorf("subscribe with history 1001: error %v, want error 101", r.Error)
	}
}

func TestUnsubscribe(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	sub := dial(t, base, "sub")
	pub := dial(t, base, "pub")

	if err := sub.Unsubscribe(ctx, "never"); err != nil {
		t.Errorf("unsubscribe from a channel not subscribed: %v", err)
	}
	err := sub.Unsubscribe(ctx, "bad channel")
	if err != nil {
		wantError(t, "unsubscribe from an invalid channel", err, protocol.ErrInvalidChannel)
	}

	if _, err := sub.Subscribe(ctx, "news", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, "news", 2)
	sub.waitPubs(t, "news", 2)
	if err := sub.Unsubscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, "news", 3) // offsets 3 to 5, not for sub
	res, err := sub.Subscribe(ctx, "news", client.SubscribeOptions{})
	if err != nil {
		t.Fatalf("subscribe again after unsubscribe: %v", err)
	}
	if res.Offset != 5 {
		t.Fatalf("subscribe again: offset %d, want 5", res.Offset)
	}
	publishN(t, pub, "news", 1)
	waitFor(t, "publication 6", func() bool {
		pubs := sub.pubs("news")
		return len(pubs) > 0 && pubs[len(pubs)-1].Offset == 6
	})
	if got := offsets(sub.pubs("news")); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 6 {
		t.Errorf("publications received %v, want [1 2 6]: none between unsubscribe and subscribe", got)
	}
}

func TestPublish(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	sub := dial(t, base, "sub")
	pub := dial(t, base, "alice")
	if _, err := sub.Subscribe(ctx, "news", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Subscribe(ctx, "news", client.SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}

	values := []string{`{"text":"hi"}`, `"a string"`, `42`, `[1,2,3]`, `null`, `true`, `{"nested":{"ü":"✓"}}`}
	before := time.Now()
	for _, v := range values {
		if _, err := pub.Publish(ctx, "news", json.RawMessage(v)); err != nil {
			t.Fatalf("publish %s: %v", v, err)
		}
	}
	after := time.Now()
	got := sub.waitPubs(t, "news", len(values))
	checkOffsets(t, "publications", got, 1)
	for i, p := range got {
		if !jsonEqual(p.Data, []byte(values[i])) {
			t.Errorf("publication %d data %s, want %s", i+1, p.Data, values[i])
		}
		if p.From == nil || p.From.Client != pub.ID() || !jsonEqual(p.From.Info, []byte(`{"name":"alice"}`)) || p.From.User != "" {
			t.Errorf("publication %d from %+v, want client %s with info {\"name\":\"alice\"}", i+1, p.From, pub.ID())
		}
		if tm := time.UnixMilli(p.Time); tm.Before(before.Add(-time.Second)) || tm.After(after.Add(time.Second)) {
			t.Errorf("publication %d time %v, want between %v and %v", i+1, tm, before, after)
		}
	}
	// The publisher, subscribed, receives its own publications.
	checkOffsets(t, "publisher's own publications", pub.waitPubs(t, "news", len(values)), 1)

	// A client need not be subscribed to publish.
	other := dial(t, base, "")
	pos, err := other.Publish(ctx, "news", map[string]string{"text": "from outside"})
	if err != nil || pos.Offset != uint64(len(values)+1) {
		t.Errorf("publish without subscribing: %+v, %v", pos, err)
	}
	// An anonymous client without a name is shown as nobody: its
	// connection id alone would tell a subscriber nothing.
	if p := sub.waitPubs(t, "news", len(values)+1)[len(values)]; p.From != nil {
		t.Errorf("publication of an anonymous client without a name carries from %+v, want none", p.From)
	}
}

func TestPublishErrors(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	ctx := testContext(t)
	c := dial(t, base, "")

	_, err := c.Publish(ctx, "bad channel", 1)
	wantError(t, "publish to an invalid channel", err, protocol.ErrInvalidChannel)
	_, err = c.Publish(ctx, "nope:x", 1)
	wantError(t, "publish in an unknown namespace", err, protocol.ErrUnknownNamespace)

	// 16 KiB of encoded data is the limit.
	limit := 16 << 10
	exact := json.RawMessage(`"` + strings.Repeat("x", limit-2) + `"`)
	if _, err := c.Publish(ctx, "news", exact); err != nil {
		t.Errorf("publish of exactly 16 KiB: %v", err)
	}
	over := json.RawMessage(`"` + strings.Repeat("x", limit-1) + `"`)
	_, err = c.Publish(ctx, "news", over)
	wantError(t, "publish of 16 KiB + 1", err, protocol.ErrDataTooLarge)

	// Nothing was published by the failed calls.
	h, err := c.History(ctx, "news", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Offset != 1 || len(h.Publications) != 1 {
		t.Errorf("history after failed publishes: offset %d, %d publications; want only the 16 KiB one", h.Offset, len(h.Publications))
	}
}

func TestPublishDataTooLargeConfigured(t *testing.T) {
	base, _ := startServer(t, redcast.Config{MaxDataSize: 100})
	ctx := testContext(t)
	c := dial(t, base, "")
	if _, err := c.Publish(ctx, "news", json.RawMessage(`"`+strings.Repeat("x", 98)+`"`)); err != nil {
		t.Errorf("publish of MaxDataSize bytes: %v", err)
	}
	_, err := c.Publish(ctx, "news", json.RawMessage(`"`+strings.Repeat("x", 99)+`"`))
	wantError(t, "publish above MaxDataSize", err, protocol.ErrDataTooLarge)
}

func TestHistory(t *testing.T) {
	base, _ := startServer(t, bareConfig())
	ctx := testContext(t)
	c := dial(t, base, "")

	h, err := c.History(ctx, "empty", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Publications) != 0 || h.Offset != 0 {
		t.Errorf("history of an empty channel: %+v", h)
	}

	pos := publishN(t, c, "news", 10)
	epoch := pos[0].Epoch

	h, err = c.History(ctx, "news", client.HistoryOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, "history limit 3", h.Publications, 8)
	if len(h.Publications) != 3 || h.Offset != 10 || h.Epoch != epoch {
		t.Errorf("history limit 3: %d publications, position %d/%s; want 3 and 10/%s", len(h.Publications), h.Offset, h.Epoch, epoch)
	}

	h, err = c.History(ctx, "news", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, "history without limit", h.Publications, 1)
	if len(h.Publications) != 10 {
		t.Errorf("history without limit: %d publications, want 10", len(h.Publications))
	}
	if !jsonEqual(h.Publications[4].Data, []byte(`{"n":5}`)) {
		t.Errorf("history publication 5 data %s", h.Publications[4].Data)
	}

	h, err = c.History(ctx, "news", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 4, Epoch: epoch}, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, "history since 4 limit 3", h.Publications, 5)
	if len(h.Publications) != 3 || h.Offset != 10 {
		t.Errorf("history since 4 limit 3: %d publications, offset %d; want 5, 6, 7 and 10", len(h.Publications), h.Offset)
	}

	h, err = c.History(ctx, "news", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 10, Epoch: epoch}})
	if err != nil {
		t.Errorf("history since the current position: %v", err)
	} else if len(h.Publications) != 0 || h.Offset != 10 {
		t.Errorf("history since the current position: %+v, want nothing", h)
	}

	h, err = c.History(ctx, "news", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 0, Epoch: epoch}})
	if err != nil {
		t.Errorf("history since offset 0: %v", err)
	} else {
		checkOffsets(t, "history since offset 0", h.Publications, 1)
	}
}

func TestHistoryErrors(t *testing.T) {
	cfg := bareConfig()
	cfg.Namespaces["small"] = auth.Namespace{HistorySize: 3, Anonymous: true, Publish: true}
	base, _ := startServer(t, cfg)
	ctx := testContext(t)
	c := dial(t, base, "")

	_, err := c.History(ctx, "bad channel", client.HistoryOptions{})
	wantError(t, "history of an invalid channel", err, protocol.ErrInvalidChannel)
	_, err = c.History(ctx, "nope:x", client.HistoryOptions{})
	wantError(t, "history in an unknown namespace", err, protocol.ErrUnknownNamespace)
	_, err = c.History(ctx, "bare:x", client.HistoryOptions{})
	wantError(t, "history in a namespace without history", err, protocol.ErrNotAvailable)

	pos := publishN(t, c, "small:x", 6) // history keeps 4, 5, 6
	epoch := pos[0].Epoch
	_, err = c.History(ctx, "small:x", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 2, Epoch: epoch}})
	wantError(t, "history since a trimmed position", err, protocol.ErrPositionExpired)
	_, err = c.History(ctx, "small:x", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 5, Epoch: "other-epoch"}})
	wantError(t, "history since another epoch", err, protocol.ErrPositionExpired)
	_, err = c.History(ctx, "small:x", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 9, Epoch: epoch}})
	wantError(t, "history since a position in the future", err, protocol.ErrPositionExpired)

	// The oldest position history can continue from is just before the
	// oldest publication kept.
	h, err := c.History(ctx, "small:x", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 3, Epoch: epoch}})
	if err != nil {
		t.Errorf("history since 3 with 4 to 6 kept: %v", err)
	} else {
		checkOffsets(t, "history since 3", h.Publications, 4)
	}

	// Limits out of range are refused as bad requests.
	raw, _ := dialRawConnected(t, base, "")
	for _, limit := range []int{-1, redcast.MaxHistoryLimit + 1} {
		r := raw.call(protocol.MethodHistory, map[string]any{"channel": "small:x", "limit": limit})
		if r.Error == nil || r.Error.Code != protocol.ErrBadRequest.Code {
			t.Errorf("history limit %d: error %v, want error 101", limit, r.Error)
		}
	}
}

func TestPresenceErrors(t *testing.T) {
	base, _ := startServer(t, bareConfig())
	ctx := testContext(t)
	c := dial(t, base, "")
	_, err := c.Presence(ctx, "bad channel")
	wantError(t, "presence of an invalid channel", err, protocol.ErrInvalidChannel)
	_, err = c.Presence(ctx, "nope:x")
	wantError(t, "presence in an unknown namespace", err, protocol.ErrUnknownNamespace)
	_, err = c.Presence(ctx, "bare:x")
	wantError(t, "presence in a namespace without presence", err, protocol.ErrNotAvailable)
	clients, err := c.Presence(ctx, "nobody")
	if err != nil || len(clients) != 0 {
		t.Errorf("presence of a channel without subscribers: %+v, %v", clients, err)
	}
}

func TestPing(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	c := dial(t, base, "")
	for range 3 {
		if err := c.Ping(testContext(t)); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := dialRawConnected(t, base, "")
	r := raw.call(protocol.MethodPing, nil)
	decodeResult(t, r, nil)
	if string(r.Result) != "{}" {
		t.Errorf("ping result %s, want {}", r.Result)
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

// TestHistoryMaxLimit checks that history and subscribe never return more
// than 1000 publications, and that a limit of 0 means 1000.
func TestHistoryMaxLimit(t *testing.T) {
	const n = redcast.MaxHistoryLimit + 200
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{"big": {HistorySize: 2000}})})
	ctx := testContext(t)
	c := dial(t, base, "")
	pos := publishN(t, c, "big:x", n)

	h, err := c.History(ctx, "big:x", client.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, "history without limit", h.Publications, n-redcast.MaxHistoryLimit+1)
	if len(h.Publications) != redcast.MaxHistoryLimit {
		t.Errorf("history without limit: %d publications, want the latest 1000", len(h.Publications))
	}

	h, err = c.History(ctx, "big:x", client.HistoryOptions{Since: &protocol.StreamPosition{Offset: 0, Epoch: pos[0].Epoch}})
	if err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, "history since 0", h.Publications, 1)
	if len(h.Publications) != redcast.MaxHistoryLimit || h.Offset != n {
		t.Errorf("history since 0: %d publications, offset %d; want the oldest 1000 and %d", len(h.Publications), h.Offset, n)
	}

	raw, _ := dialRawConnected(t, base, "")
	r := raw.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "big:x", History: redcast.MaxHistoryLimit})
	if r.Error != nil {
		t.Fatalf("subscribe with history 1000: %v", r.Error)
	}
	var res protocol.SubscribeResult
	decodeResult(t, r, &res)
	if len(res.Publications) != redcast.MaxHistoryLimit {
		t.Errorf("subscribe with history 1000 returned %d publications, want 1000", len(res.Publications))
	}
	checkOffsets(t, "subscribe with history 1000", res.Publications, n-uint64(len(res.Publications))+1)
}

// TestHistoryTTL checks that expired publications leave history, and that
// a position before them can no longer be continued.
func TestHistoryTTL(t *testing.T) {
	base, _ := startServer(t, redcast.Config{Namespaces: namespaces(map[string]auth.Namespace{
		"ttl": {HistorySize: 10, HistoryTTL: 200 * time.Millisecond},
	})})
	ctx := testContext(t)
	c := dial(t, base, "")
	pos := publishN(t, c, "ttl:x", 3)
	kept := pos[0] // publications 2 and 3 come after it

	waitFor(t, "publications to expire", func() bool {
		h, err := c.History(ctx, "ttl:x", client.HistoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(h.Publications) == 0
	})
	_, err := c.History(ctx, "ttl:x", client.HistoryOptions{Since: &kept})
	wantError(t, "history since an expired position", err, protocol.ErrPositionExpired)
	res, err := c.Subscribe(ctx, "ttl:x", client.SubscribeOptions{Since: &kept})
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered {
		t.Errorf("recovered across expired publications: %+v", res)
	}

	// Publications that expire keep the epoch: offsets go on.
	if res.Epoch != kept.Epoch || res.Offset != 3 {
		t.Errorf("position after expiry %d/%s, want 3/%s", res.Offset, res.Epoch, kept.Epoch)
	}
	next, err := c.Publish(ctx, "ttl:x", 4)
	if err != nil {
		t.Fatal(err)
	}
	if next.Epoch != kept.Epoch || next.Offset != 4 {
		t.Errorf("publication after expiry at %+v, want offset 4 in epoch %s", next, kept.Epoch)
	}
}

// TestProtocolDefaults checks what docs/protocol.md says of the defaults:
// subscribe's history is 0, an empty channel's offset is 0, "data": null is
// a publication, the server's frames do not end with '\n', and a client's
// frame may end with one and hold blank lines.
func TestProtocolDefaults(t *testing.T) {
	base, _ := startServer(t, redcast.Config{})
	c, _ := dialRawConnected(t, base, "")

	var res protocol.SubscribeResult
	decodeResult(t, c.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "chat:empty"}), &res)
	if res.Offset != 0 || res.Epoch == "" {
		t.Errorf("subscribe to an empty channel: offset %d, epoch %q; want offset 0 and an epoch", res.Offset, res.Epoch)
	}

	var pos protocol.StreamPosition
	decodeResult(t, c.call(protocol.MethodPublish, map[string]any{"channel": "chat:empty", "data": nil}), &pos)
	if pos.Offset != 1 {
		t.Errorf("publish of data null: offset %d, want 1", pos.Offset)
	}

	// History is kept, but a subscribe without history gets none of it.
	other, _ := dialRawConnected(t, base, "")
	decodeResult(t, other.call(protocol.MethodSubscribe, protocol.SubscribeParams{Channel: "chat:empty"}), &res)
	if res.Offset != 1 || len(res.Publications) != 0 {
		t.Errorf("subscribe without history: offset %d with %d publications, want offset 1 and none", res.Offset, len(res.Publications))
	}

	// Blank lines and a final '\n' in a client's frame; two replies come
	// back in one frame that does not end with '\n'.
	id1, ping1 := c.command(protocol.MethodPing, nil)
	id2, ping2 := c.command(protocol.MethodPing, nil)
	c.writeFrame(ws.OpText, true, []byte("\n"+ping1+"\n\n  \n"+ping2+"\n"))
	var lines [][]byte
	for len(lines) < 2 {
		payload, err := c.nextText()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasSuffix(payload, []byte("\n")) {
			t.Errorf("server frame %q ends with a line break", payload)
		}
		for _, l := range bytes.Split(payload, []byte("\n")) {
			var m protocol.ServerMessage
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("server line %q: %v", l, err)
			}
			if !m.IsPush() {
				lines = append(lines, l)
			}
		}
	}
	if want := fmt.Sprintf(`{"id":%d,"result":{}}`, id1); string(lines[0]) != want {
		t.Errorf("first reply %s, want %s", lines[0], want)
	}
	if want := fmt.Sprintf(`{"id":%d,"result":{}}`, id2); string(lines[1]) != want {
		t.Errorf("second reply %s, want %s", lines[1], want)
	}
}
