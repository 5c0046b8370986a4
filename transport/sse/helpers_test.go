package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/broker/brokertest"
	"github.com/redcast/redcast/broker/memory"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/transport/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for an event or a condition.
const waitTimeout = 10 * time.Second

// testNode is a node with its memory broker (which tests publish to, as
// the HTTP API does) and its SSE handler at GET /connection/sse.
type testNode struct {
	url     string // the stream endpoint
	node    *redcast.Node
	broker  *memory.Broker
	handler *sse.Handler
}

// startNode serves a node built from cfg on a random port; it is shut down
// when the test ends.
func startNode(t *testing.T, cfg redcast.Config, opts sse.Options) *testNode {
	t.Helper()
	b := memory.New(memory.Config{})
	node := redcast.NewNode(cfg, redcast.Deps{Broker: b})
	if err := node.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := sse.NewHandler(node, opts)
	mux := http.NewServeMux()
	mux.Handle("GET /connection/sse", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
		srv.Close()
	})
	return &testNode{url: srv.URL + "/connection/sse", node: node, broker: b, handler: h}
}

// streamURL is the endpoint with the channels and extra parameters.
func (n *testNode) streamURL(extra string, channels ...string) string {
	var q []string
	for _, ch := range channels {
		q = append(q, "channel="+ch)
	}
	if extra != "" {
		q = append(q, extra)
	}
	return n.url + "?" + strings.Join(q, "&")
}

// publish publishes count messages {"n": i} to ch, keeping history of
// historySize, and returns the last position.
func (n *testNode) publish(t *testing.T, ch string, count, historySize int) protocol.StreamPosition {
	t.Helper()
	var pos protocol.StreamPosition
	for i := range count {
		var err error
		pos, err = n.broker.Publish(t.Context(), ch, []byte(fmt.Sprintf(`{"n":%d}`, i+1)), broker.PublishOptions{HistorySize: historySize})
		if err != nil {
			t.Fatalf("publish to %s: %v", ch, err)
		}
	}
	return pos
}

// event is one SSE event as a client parses it.
type event struct {
	ID    string
	Retry string
	Data  string
	Msg   message // Data decoded
}

// message is the data of any event of the stream.
type message struct {
	Push        string                   `json:"push"`
	Channel     string                   `json:"channel"`
	Pub         *protocol.Publication    `json:"pub"`
	Client      json.RawMessage          `json:"client"`
	User        string                   `json:"user"`
	Code        uint16                   `json:"code"`
	Reason      string                   `json:"reason"`
	Reconnect   bool                     `json:"reconnect"`
	Offset      uint64                   `json:"offset"`
	Epoch       string                   `json:"epoch"`
	Recoverable bool                     `json:"recoverable"`
	Recovered   bool                     `json:"recovered"`
	Since       *protocol.StreamPosition `json:"since"`

	raw string // the event's data
}

// stream is an open event stream read by net/http.
type stream struct {
	t      *testing.T
	res    *http.Response
	events chan event
	pings  chan struct{}
	done   chan error // the reader's end: io.EOF or the read error
	lastID string
	// pending are events connect read past, for next to return first.
	pending []event
}

// open requests url with headers and fails unless the answer is a stream.
func open(t *testing.T, url string, header http.Header) *stream {
	t.Helper()
	s, res := tryOpen(t, url, header)
	if s == nil {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %s", url, res.Status, body)
	}
	return s
}

// tryOpen requests url; it returns the stream, or nil and the response
// when the answer is not 200 (its body is closed when the test ends).
func tryOpen(t *testing.T, url string, header http.Header) (*stream, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		return nil, res
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	s := &stream{t: t, res: res, events: make(chan event, 10000), pings: make(chan struct{}, 100), done: make(chan error, 1)}
	go s.read()
	t.Cleanup(s.close)
	return s, res
}

// read parses the stream as EventSource does until it ends.
func (s *stream) read() {
	br := bufio.NewReader(s.res.Body)
	var ev event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			close(s.events)
			s.done <- err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			if line == ": ping" {
				select {
				case s.pings <- struct{}{}:
				default:
				}
			}
			if line != "" {
				continue
			}
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				if err := json.Unmarshal([]byte(ev.Data), &ev.Msg); err != nil {
					ev.Msg.Push = "undecodable: " + err.Error()
				}
				ev.Msg.raw = ev.Data
				s.events <- ev
			}
			ev, data = event{}, nil
		case "id":
			ev.ID = value
		case "retry":
			ev.Retry = value
		case "data":
			data = append(data, value)
		}
	}
}

// close ends the stream from the client's side and waits for the reader.
func (s *stream) close() {
	s.res.Body.Close()
	for range s.events {
	}
}

// next returns the next event, failing after waitTimeout or at the end.
func (s *stream) next() event {
	s.t.Helper()
	if len(s.pending) > 0 {
		ev := s.pending[0]
		s.pending = s.pending[1:]
		return ev
	}
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatalf("stream ended while waiting for an event")
		}
		if ev.ID == "" {
			s.t.Fatalf("event without id: %s", ev.Data)
		}
		s.lastID = ev.ID
		return ev
	case <-time.After(waitTimeout):
		s.t.Fatalf("no event within %v", waitTimeout)
	}
	panic("unreachable")
}

// nextPush returns the next event whose push is typ, skipping others (joins
// and leaves).
func (s *stream) nextPush(typ string) event {
	s.t.Helper()
	for {
		if ev := s.next(); ev.Msg.Push == typ {
			return ev
		}
	}
}

// pubs reads publications until it has n of them and returns them, with
// the id of the event that carried each.
func (s *stream) pubs(n int) ([]message, []string) {
	s.t.Helper()
	var msgs []message
	var ids []string
	for len(msgs) < n {
		ev := s.next()
		switch ev.Msg.Push {
		case protocol.PushPublication:
			msgs = append(msgs, ev.Msg)
			ids = append(ids, ev.ID)
		case protocol.PushJoin, protocol.PushLeave:
		default:
			s.t.Fatalf("got %s while waiting for %d publications (have %d)", ev.Data, n, len(msgs))
		}
	}
	return msgs, ids
}

// expectEnd waits for the stream to end and returns the events before.
func (s *stream) expectEnd() []event {
	s.t.Helper()
	var evs []event
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				if err := <-s.done; err != io.EOF {
					s.t.Errorf("stream ended with %v, want a clean end (EOF)", err)
				}
				return evs
			}
			evs = append(evs, ev)
		case <-timeout:
			s.t.Fatalf("stream did not end within %v", waitTimeout)
		}
	}
}

// connect reads the connect and subscribe events of a new stream of n
// channels and returns the subscribe events by channel.
func (s *stream) connect(n int) (connect message, subs map[string]message) {
	s.t.Helper()
	ev := s.next()
	if ev.Msg.Push != sse.PushConnect || ev.Retry == "" {
		s.t.Fatalf("first event %q retry %q, want connect with a retry field", ev.Data, ev.Retry)
	}
	subs = make(map[string]message)
	var later []event
	for len(subs) < n {
		switch ev := s.next(); ev.Msg.Push {
		case sse.PushSubscribe:
			subs[ev.Msg.Channel] = ev.Msg
		default:
			later = append(later, ev)
		}
	}
	s.pending = append(later, s.pending...)
	return ev.Msg, subs
}

// waitFor polls cond until it holds, failing after a while.
var waitFor = brokertest.WaitFor

// checkPubs fails unless msgs are publications of ch with data {"n": …}
// and the consecutive offsets from, from+1 …
func checkPubs(t *testing.T, what string, msgs []message, ch string, from uint64) {
	t.Helper()
	for i, m := range msgs {
		if m.Channel != ch || m.Pub == nil || m.Pub.Offset != from+uint64(i) {
			t.Fatalf("%s: publication %d is %+v, want offset %d of %s", what, i, m.Pub, from+uint64(i), ch)
		}
	}
}
