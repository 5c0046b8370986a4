package client

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/centrifugal/fdelta"

	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// scoreboard is publication n of a feed whose publications differ a little
// from each other, as a live score does.
func scoreboard(n int) map[string]any {
	players := make([]map[string]any, 20)
	for i := range players {
		players[i] = map[string]any{"name": fmt.Sprintf("player-%02d", i), "score": 1000 + i*7 + (n*(i+3))%11, "online": (n+i)%5 != 0}
	}
	return map[string]any{"round": n, "leader": fmt.Sprintf("player-%02d", n%20), "players": players, "note": "é ü 日本"}
}

// TestSessionDelta: a Session that asks for deltas gives its handlers whole
// data, every publication once and in order, across dropped connections
// (recovery sends whole publications, and the first live one after is
// whole again), on the memory broker and on Redis; a Client of its own
// sees the deltas themselves and applies them with ApplyDelta.
func TestSessionDelta(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		addr, _ := testserver.Start(t, server.Config{})
		checkSessionDelta(t, addr)
	})
	t.Run("redis", func(t *testing.T) {
		rs := testredis.Start(t, testredis.Options{})
		rb, err := redis.New(testContext(t), redis.Config{URL: rs.URL(), Prefix: "delta"})
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := testserver.Start(t, server.Config{Broker: rb, Presence: rb})
		checkSessionDelta(t, addr)
	})
}

func checkSessionDelta(t *testing.T, addr string) {
	const ch, total = "chat:scores", 120
	px := newProxy(t, addr)
	s := connect(t, px.url(), fast)
	rec := &recorder{}
	if _, err := s.Subscribe(testContext(t), ch, SubscribeOptions{Delta: true}, rec.handlers()); err != nil {
		t.Fatal(err)
	}

	// A Client of its own, which sees the pushes as they come.
	var (
		mu     sync.Mutex
		raw    []protocol.Publication
		deltas int
	)
	c := dial(t, wsURL(addr), Options{OnPush: func(p *protocol.Push) {
		if p.Type == protocol.PushPublication {
			mu.Lock()
			raw = append(raw, *p.Pub)
			mu.Unlock()
		}
	}})
	res, err := c.Subscribe(testContext(t), ch, SubscribeOptions{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Delta {
		t.Fatalf("subscribe result %+v: want delta on in the default namespaces", res)
	}

	pub := dial(t, wsURL(addr), Options{})
	for n := 1; n <= total; n++ {
		if _, err := pub.Publish(testContext(t), ch, scoreboard(n)); err != nil {
			t.Fatal(err)
		}
		if n == 30 || n == 70 {
			px.cut()
		}
	}

	// The cuts come before the last publications: a duplicate (of a
	// recovery) would be among the first total events, which must be
	// offsets 1 to total exactly.
	pubs := rec.waitPubs(t, total)
	checkOffsets(t, pubs, 1, total)
	for _, p := range pubs {
		want, _ := json.Marshal(scoreboard(int(p.Offset)))
		if p.Delta || string(p.Data) != string(want) {
			t.Fatalf("publication %d reached the handler as %s (delta %v), want %s", p.Offset, p.Data, p.Delta, want)
		}
	}

	eventually(t, "the client's pushes", func() bool { mu.Lock(); defer mu.Unlock(); return len(raw) == total })
	var prev []byte
	for i, p := range raw {
		data := []byte(p.Data)
		if p.Delta {
			deltas++
			if i == 0 {
				t.Fatal("the first publication is a delta")
			}
			if data, err = ApplyDelta(prev, p.Data); err != nil {
				t.Fatalf("publication %d: %v", p.Offset, err)
			}
			// An independent check: the delta is Fossil's, as fdelta applies it.
			var d string
			_ = json.Unmarshal(p.Data, &d)
			if again, err := fdelta.Apply(prev, []byte(d)); err != nil || string(again) != string(data) {
				t.Fatalf("publication %d: fdelta.Apply: %v", p.Offset, err)
			}
		}
		want, _ := json.Marshal(scoreboard(int(p.Offset)))
		if string(data) != string(want) {
			t.Fatalf("publication %d: %s, want %s", p.Offset, data, want)
		}
		prev = data
	}
	if deltas != total-1 {
		t.Errorf("%d of %d publications were deltas, want all but the first", deltas, total)
	}
}

func TestApplyDeltaErrors(t *testing.T) {
	prev := []byte(`{"a":1,"b":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	next := []byte(`{"a":2,"b":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	d, _ := json.Marshal(string(fdelta.Create(prev, next)))
	if got, err := ApplyDelta(prev, d); err != nil || string(got) != string(next) {
		t.Fatalf("ApplyDelta = %s, %v", got, err)
	}
	notJSON, _ := json.Marshal(string(fdelta.Create(prev, []byte("not json"))))
	for name, c := range map[string]struct{ prev, delta []byte }{
		"other base":     {[]byte(`{"a":3,"b":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}`), d},
		"not a string":   {prev, []byte(`{"x":1}`)},
		"garbage":        {prev, []byte(`"zzz"`)},
		"result no JSON": {prev, notJSON},
		"huge output":    {prev, []byte(`"zzzzzzz\n0@0,abc;"`)},
	} {
		if _, err := ApplyDelta(c.prev, c.delta); err == nil || !strings.Contains(err.Error(), ErrDelta.Error()) {
			t.Errorf("%s: %v, want ErrDelta", name, err)
		}
	}
}

// FuzzApplyDelta: whatever a server sends as a delta, ApplyDelta returns
// JSON or ErrDelta, never panics, never more than its limit.
func FuzzApplyDelta(f *testing.F) {
	prev := []byte(`{"players":[{"name":"a","score":1},{"name":"b","score":2}]}`)
	next := []byte(`{"players":[{"name":"a","score":3},{"name":"b","score":2}]}`)
	d, _ := json.Marshal(string(fdelta.Create(prev, next)))
	f.Add(prev, d)
	f.Add(prev, []byte(`"1\n0@0,1;"`))
	f.Add([]byte(`1`), []byte(`"3\n1:2@0,1:3;"`))
	f.Add([]byte(nil), []byte(`""`))
	f.Fuzz(func(t *testing.T, prev, delta []byte) {
		out, err := ApplyDelta(prev, delta)
		if err == nil && !json.Valid(out) {
			t.Fatalf("ApplyDelta returned %q, not JSON", out)
		}
		if len(out) > maxDeltaOutput {
			t.Fatalf("%d bytes out", len(out))
		}
	})
}
