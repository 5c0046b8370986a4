package sse

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redcast/redcast/protocol"
)

// peerGone is the Close of a stream whose client went away: nothing more
// is written.
var peerGone = protocol.Disconnect{Code: 0, Reason: "client gone"}

// stream is one SSE response: the redcast.Transport the client writes to,
// and the write loop, run by the handler's goroutine, that owns the
// response. Send and Close only queue and never block.
type stream struct {
	limits limits

	mu        sync.Mutex
	queue     []item
	queued    int // bytes in queue
	closing   bool
	closeMsg  protocol.Disconnect
	dropQueue bool // a slow consumer: discard the queue, write the end only

	wake chan struct{} // cap 1: something to write
}

type limits struct {
	maxMessages  int
	maxBytes     int
	writeTimeout time.Duration
	pingInterval time.Duration
	retry        time.Duration
}

// item is one queued thing to write: a push line of the full protocol, or
// (from the handler) an event of the stream's own.
type item struct {
	line []byte
	sub  *subscribed // the subscription of a channel went live
	conn *protocol.ConnectResult
}

// subscribed is a channel's subscribe result, written as a subscribe
// event followed by its publications.
type subscribed struct {
	channel string
	since   *protocol.StreamPosition
	res     *protocol.SubscribeResult
}

func newStream(l limits) *stream {
	return &stream{limits: l, wake: make(chan struct{}, 1)}
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Send implements redcast.Transport.
func (s *stream) Send(msg []byte) bool {
	s.mu.Lock()
	if s.closing || len(s.queue) >= s.limits.maxMessages || s.queued+len(msg) > s.limits.maxBytes {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, item{line: msg})
	s.queued += len(msg)
	s.mu.Unlock()
	s.signal()
	return true
}

// push queues an event of the stream's own (connect, subscribe). They come
// from the handler before the stream starts and are bounded by the
// channel limit and history sizes, not by the queue's limits.
func (s *stream) push(it item) {
	s.mu.Lock()
	if !s.closing {
		s.queue = append(s.queue, it)
	}
	s.mu.Unlock()
	s.signal()
}

// Close implements redcast.Transport. The first call wins; the write loop
// then writes what is queued (unless the client is a slow consumer) and a
// final disconnect event, and ends the response.
func (s *stream) Close(d protocol.Disconnect) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.closeMsg = d
	s.dropQueue = d == protocol.DisconnectSlowConsumer
	s.mu.Unlock()
	s.signal()
}

func (s *stream) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// run writes the stream until it closes: queued events, a ping comment
// when it has been idle for the ping interval, and at the end the final
// disconnect event. It returns when the response is done: after the final
// event, when a write fails, when ctx ends (the client went away) or when
// quit closes (the handler drains; the stream ends with 3001).
func (s *stream) run(ctx context.Context, w http.ResponseWriter, pos *positions, quit <-chan struct{}) {
	rc := http.NewResponseController(w)
	// The stream outlives any read timeout of the server; the client's
	// leaving still cancels ctx.
	_ = rc.SetReadDeadline(time.Time{})
	ew := &eventWriter{pos: pos, retry: s.limits.retry}
	ping := time.NewTicker(s.limits.pingInterval)
	defer ping.Stop()
	var batch []item
	for {
		select {
		case <-s.wake:
		case <-ping.C:
			ew.ping()
			if s.flush(w, rc, ew) != nil {
				s.Close(peerGone)
				return
			}
			continue
		case <-ctx.Done():
			s.Close(peerGone)
			return
		case <-quit:
			s.Close(protocol.DisconnectShutdown)
			quit = nil
			continue
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.queued = 0
		closing, drop, d := s.closing, s.dropQueue, s.closeMsg
		s.mu.Unlock()
		if drop {
			batch = batch[:0]
		}
		for _, it := range batch {
			ew.item(it)
		}
		clear(batch) // let the queued messages be collected
		if closing {
			if d != peerGone {
				ew.disconnect(d)
				_ = s.flush(w, rc, ew)
			}
			return
		}
		if s.flush(w, rc, ew) != nil {
			s.Close(peerGone)
			return
		}
		ping.Reset(s.limits.pingInterval)
	}
}

// flush writes what ew holds with one write, bounded by the write timeout.
func (s *stream) flush(w http.ResponseWriter, rc *http.ResponseController, ew *eventWriter) error {
	defer ew.reset()
	if len(ew.buf) == 0 {
		return nil
	}
	if err := rc.SetWriteDeadline(time.Now().Add(s.limits.writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := w.Write(ew.buf); err != nil {
		return err
	}
	return rc.Flush()
}

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
