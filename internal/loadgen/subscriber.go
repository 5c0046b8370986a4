package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsframe"
)

// Reply ids of a full-protocol subscriber's commands.
const (
	idConnect   = 1
	idSubscribe = 2
)

// subscriber is one subscriber connection. Its reader goroutine owns the
// reader state; the run reads the atomic counters at any time and the rest
// after done is closed.
type subscriber struct {
	run     *run
	channel int
	c       *conn
	plain   bool
	// pusher is a Pusher protocol client; pusherCh its Pusher channel.
	pusher   bool
	pusherCh string
	shard    *latencyShard
	// pubHead is how a publication push of the channel starts, up to its
	// offset: the fast path that spares a search.
	pubHead []byte

	// reader state
	subscribed bool
	subErr     error
	lastOffset uint64   // full protocol: offset of the last publication
	lastSeq    []uint64 // plain mode and Pusher: sequence of the last publication per publisher
	readySeen  bool
	// t and lat gather the counts and latencies of the frames handled
	// since the last flush.
	t   tally
	lat []int64

	readyAt  atomic.Int64 // Unix nanoseconds of the first publication once probing began; 0 before
	received atomic.Int64 // publications, each once (duplicates excluded)
	measured atomic.Int64 // measured publications, each once
	dups     atomic.Int64 // publications received again or out of order
	wire     atomic.Int64 // bytes read from the socket, as of the last flush
	bad      atomic.Int64 // publications whose stamp could not be read

	done  chan struct{} // closed when the reader stops
	err   error         // why the reader stopped
	early bool          // it stopped before the run closed the connection
}

// connectSubscriber opens subscriber i's connection and, in the full
// protocol, connects and subscribes with one frame and waits for the reply.
// A plain-mode client is subscribed by the server on upgrade.
func (r *run) connectSubscriber(ctx context.Context, i int) (*subscriber, error) {
	ch := i % r.opts.Channels
	s := &subscriber{
		run:     r,
		channel: ch,
		plain:   r.opts.PlainRoom != "",
		pusher:  r.opts.PusherKey != "",
		shard:   r.lat.shard(i),
		pubHead: r.pubHeads[ch],
		done:    make(chan struct{}),
	}
	c, err := dial(ctx, r.subURLs[ch], r.source(i), r.opts.Compression)
	if err != nil {
		return nil, err
	}
	s.c = c
	if s.plain {
		s.lastSeq = make([]uint64, r.opts.Publishers)
		return s, nil
	}
	cmds := fmt.Appendf(nil, "{\"id\":%d,\"method\":\"connect\",\"params\":{\"name\":\"bench\"}}\n"+
		"{\"id\":%d,\"method\":\"subscribe\",\"params\":{\"channel\":%q}}", idConnect, idSubscribe, r.channels[ch])
	if s.pusher {
		s.lastSeq = make([]uint64, r.opts.Publishers)
		_, s.pusherCh, _ = strings.Cut(r.channels[ch], ":")
		cmds = fmt.Appendf(nil, `{"event":"pusher:subscribe","data":{"channel":%q}}`, s.pusherCh)
	}
	if err := c.write(wsframe.AppendClientFrame(nil, ws.OpText, cmds)); err != nil {
		_ = c.nc.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	_ = c.nc.SetReadDeadline(time.Now().Add(connectTimeout))
	for !s.subscribed && s.subErr == nil {
		p, err := c.next()
		if err != nil {
			_ = c.nc.Close()
			return nil, err
		}
		s.handleFrame(p, time.Now().UnixNano())
	}
	s.flush()
	if s.subErr != nil {
		_ = c.nc.Close()
		return nil, s.subErr
	}
	if !stop() {
		_ = c.nc.Close()
		return nil, ctx.Err()
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return s, nil
}

// readLoop handles frames until the connection ends. Frames that one read
// from the socket brought share its time of arrival, and the counts are
// published (flushed) before the loop waits for the socket again: per read,
// not per frame, which matters in plain mode (a frame per message).
func (s *subscriber) readLoop() {
	defer close(s.done)
	var now int64
	reads := -1
	for {
		if s.c.br.Buffered() == 0 {
			s.flush()
		}
		p, err := s.c.next()
		if err != nil {
			s.flush()
			s.err, s.early = err, !s.run.closing.Load()
			return
		}
		if n := s.c.reads.n; n != reads {
			reads, now = n, time.Now().UnixNano()
		}
		s.handleFrame(p, now)
	}
}

// tally counts the publications handled since the last flush.
type tally struct {
	received, measured, dups, bad int64
}

// handleFrame handles one frame received at now: a plain-mode text, or
// full-protocol lines of which only publications and the replies to the
// subscriber's own commands matter.
func (s *subscriber) handleFrame(p []byte, now int64) {
	t := &s.t
	switch {
	case s.plain:
		s.publication(p, 0, now, t)
	case s.pusher:
		s.pusherMessage(p, now, t)
	default:
		for line := range lines(p) {
			switch {
			case bytes.HasPrefix(line, pubPrefix):
				off, text, ok := parsePublication(line, s.pubHead)
				if !ok {
					t.bad++
					continue
				}
				s.publication(text, off, now, t)
			case bytes.HasPrefix(line, replyPrefix):
				s.reply(line)
			}
		}
	}
}

// flush publishes the counts and latencies gathered since the last flush.
func (s *subscriber) flush() {
	s.wire.Store(s.c.reads.bytes)
	t := &s.t
	if t.received > 0 {
		s.received.Add(t.received)
	}
	if t.measured > 0 {
		s.measured.Add(t.measured)
	}
	if t.dups > 0 {
		s.dups.Add(t.dups)
	}
	if t.bad > 0 {
		s.bad.Add(t.bad)
	}
	*t = tally{}
	if len(s.lat) > 0 {
		s.shard.record(s.lat)
		s.lat = s.lat[:0]
	}
}

// publication handles one publication's text (and offset, in the full
// protocol; 0 in plain mode).
func (s *subscriber) publication(text []byte, offset uint64, now int64, t *tally) {
	st, ok := parseStamp(text)
	if !ok || st.publisher >= s.run.opts.Publishers {
		t.bad++
		return
	}
	if s.plain || s.pusher {
		if st.seq <= s.lastSeq[st.publisher] {
			t.dups++
			return
		}
		s.lastSeq[st.publisher] = st.seq
	} else {
		if offset <= s.lastOffset {
			t.dups++
			return
		}
		s.lastOffset = offset
	}
	t.received++
	if !s.readySeen && s.run.phase.Load() >= phaseProbe {
		s.readySeen = true
		s.readyAt.Store(now)
	}
	if st.measured {
		t.measured++
		s.lat = append(s.lat, now-st.sent)
	}
}

// reply handles the replies to connect and subscribe.
func (s *subscriber) reply(line []byte) {
	id, code, ok := parseReply(line)
	if !ok {
		return
	}
	switch {
	case code != 0 && (id == idConnect || id == idSubscribe):
		s.subErr = fmt.Errorf("reply to command %d: error %d: %s", id, code, line)
	case id == idSubscribe:
		s.subscribed = true
	}
}

// Markers of the Pusher messages a Pusher subscriber looks for: the
// publications (redcast's reach Pusher clients as the event
// redcast:publication, their data a JSON string, so the text's quotes are
// escaped), and the answers to its subscribe.
var (
	pusherPubPrefix   = []byte(`{"event":"redcast:publication"`)
	pusherTextKey     = []byte(`{\"text\":\"`)
	pusherSubscribed  = []byte(`{"event":"pusher_internal:subscription_succeeded"`)
	pusherRefusalKeys = [][]byte{[]byte(`{"event":"pusher:subscription_error"`), []byte(`{"event":"pusher:error"`)}
)

// pusherMessage handles one Pusher message: a publication, or the answer
// to the subscribe.
func (s *subscriber) pusherMessage(p []byte, now int64, t *tally) {
	switch {
	case bytes.HasPrefix(p, pusherPubPrefix):
		i := bytes.Index(p, pusherTextKey)
		if i < 0 {
			t.bad++
			return
		}
		s.publication(p[i+len(pusherTextKey):], 0, now, t)
	case bytes.HasPrefix(p, pusherSubscribed):
		s.subscribed = true
	default:
		for _, k := range pusherRefusalKeys {
			if bytes.HasPrefix(p, k) {
				s.subErr = fmt.Errorf("pusher subscribe to %s refused: %s", s.pusherCh, p)
			}
		}
	}
}
