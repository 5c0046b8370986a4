package sse

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// errPeerGone ends a stream whose client went away: nothing more is
// written.
var errPeerGone = errors.New("sse: client gone")

// errRefused ends a stream whose request was refused with an HTTP error
// before the stream started.
var errRefused = errors.New("sse: request refused")

// pingComment keeps an idle stream (and the proxies on its way) alive.
var pingComment = []byte(": ping\n\n")

// stream is one SSE response: the outbox.Sink of its client's outbox. The
// outbox's writer writes the response; the handler's goroutine, which owns
// it, waits until the outbox ended (see run), so that nothing is written
// after the handler returns. Writes wait until the handler wrote the
// response's header (begin), so that a refusal can still be an HTTP error.
type stream struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	out          *outbox.Outbox
	// wire counts the bytes written (redcast_wire_bytes_total); nil: not
	// counted.
	wire prometheus.Counter

	// ew frames events; only sink calls (one at a time) use it.
	ew eventWriter

	// ready is closed when the header is written (begin) or the request
	// refused (refused set first): writes wait for it.
	ready   chan struct{}
	refused bool
}

func newStream(w http.ResponseWriter, writeTimeout, retry time.Duration, pos *positions, opts outbox.Options) *stream {
	s := &stream{
		w:            w,
		rc:           http.NewResponseController(w),
		writeTimeout: writeTimeout,
		ew:           eventWriter{pos: pos, retry: retry},
		ready:        make(chan struct{}),
	}
	s.out = outbox.New(s, opts)
	return s
}

// push queues the message of an event of the stream's own (connectMessage,
// subscribeMessage), in order with the client's pushes. Like a reply of
// the full protocol, it is bounded by the queue's messages, not its bytes
// (a subscribe result may hold much history). It returns false when the
// queue is full: the caller disconnects the client as a slow consumer.
func (s *stream) push(msg []byte) bool {
	return s.out.PushReply(msg)
}

// begin lets writes start once the handler wrote the response's header.
func (s *stream) begin() {
	// The stream outlives any read timeout of the server; the client's
	// leaving still cancels the request's context.
	_ = s.rc.SetReadDeadline(time.Time{})
	close(s.ready)
}

// refuse ends a stream that never started: nothing queued is written.
func (s *stream) refuse() {
	s.refused = true
	close(s.ready)
	s.out.Abort(errRefused)
	<-s.out.Done()
}

// run waits until the stream ends, pinging it every ping interval. It
// returns once the outbox ended: after the final event, a failed write,
// the client's leaving (ctx), or quit closing (the handler drains; the
// stream ends with 3001 through disconnect).
func (s *stream) run(ctx context.Context, ping time.Duration, quit <-chan struct{}, disconnect func(protocol.Disconnect)) {
	t := time.NewTicker(ping)
	defer t.Stop()
	done := s.out.Done()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.out.PushControl(pingComment)
		case <-ctx.Done():
			s.out.Abort(errPeerGone)
			<-done
			return
		case <-quit:
			disconnect(protocol.DisconnectShutdown)
			quit = nil
		}
	}
}

// AppendFrames implements outbox.Sink: each line becomes an event with the
// stream's current id, and the message of an own event its events.
func (s *stream) AppendFrames(dst []byte, lines [][]byte) []byte {
	s.ew.buf = dst
	for _, line := range lines {
		if len(line) > 0 && line[0] == ownTag {
			s.ew.own(line)
			continue
		}
		s.ew.line(line)
	}
	dst, s.ew.buf = s.ew.buf, nil
	return dst
}

// AppendClose implements outbox.Sink: the final disconnect event.
func (s *stream) AppendClose(dst []byte, d protocol.Disconnect) []byte {
	s.ew.buf = dst
	s.ew.disconnect(d)
	dst, s.ew.buf = s.ew.buf, nil
	return dst
}

// Write implements outbox.Sink: one write and one flush, bounded by the
// write timeout.
func (s *stream) Write(b []byte) error {
	<-s.ready
	if s.refused {
		return errRefused
	}
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	n, err := s.w.Write(b)
	if s.wire != nil && n > 0 {
		s.wire.Add(float64(n))
	}
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// Finish implements outbox.Sink: the handler, waiting in run, returns and
// net/http ends the response.
func (s *stream) Finish(error) {}

// jitter returns a reconnection delay between d and 2d, so that the clients
// of a node that shuts down do not all come back at once.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d+1)
}

// appendRetry appends a retry field advising d.
func appendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, '\n')
}
