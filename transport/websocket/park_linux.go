//go:build linux

package websocket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"
)

// pollEvents is what wakes a parked connection: the peer sent something,
// hung up, or the socket failed (EPOLLERR and EPOLLHUP are always
// reported). EPOLLONESHOT disarms the socket at its first event, so that
// it wakes one read loop; parking it again re-arms it.
const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// pollBatch is how many events one epoll_wait returns at most.
const pollBatch = 128

// errPollerClosed is why a closed Handler parks no more connections.
var errPollerClosed = errors.New("websocket: handler closed")

// poller parks the sockets of idle connections in an epoll instance, so
// that an idle connection holds no goroutine: one goroutine per Handler
// waits in epoll_wait for all of them and, when a socket becomes readable,
// starts its read loop again (resume). The read loop reads through the
// net.Conn as usual; the runtime's own poller does not mind that the
// socket is in a second epoll set.
//
// A parked session is in the table under an id of its own, which is also
// the epoll event's data, so that an event never finds another connection
// that got the same file descriptor after a close. Whoever takes a session
// out of the table (the poll goroutine on its event, unpark, or the poll
// goroutine on its way out) starts its read loop: exactly once.
type poller struct {
	resume func(*session)
	log    *slog.Logger

	mu sync.Mutex
	// err is why nothing is parked: the epoll instance could not be made,
	// epoll_wait failed, or the Handler is closed.
	err    error
	closed bool
	epfd   int // the epoll instance, once started
	wake   int // an eventfd in the set, written to end the wait
	lastID uint64
	parked map[uint64]*session
	// done is closed when the poll goroutine returns; nil until started.
	done chan struct{}
}

// parking is a session's state in the poller.
type parking struct {
	// id is the session's key in the table while it is parked, 0
	// otherwise; guarded by poller.mu.
	id uint64
	// added records that the socket is in the epoll set, where
	// EPOLL_CTL_MOD re-arms it; the kernel drops it when it is closed.
	added bool
}

func (p *poller) init(resume func(*session), log *slog.Logger) {
	p.resume, p.log = resume, log
}

// park registers the socket of s, whose read loop is about to return, to
// start a read loop again once the peer sends. It returns false where it
// cannot (the connection is not a plain TCP socket, epoll failed, the
// Handler is closed): the caller then waits on a goroutine.
func (p *poller) park(s *session) bool {
	if s.c.limits.pingInterval <= 0 {
		return false // no ping timer would enforce the read deadline
	}
	rc := s.c.raw // *net.TCPConn, not *tls.Conn
	if rc == nil {
		return false
	}
	p.mu.Lock()
	if !p.startLocked() {
		p.mu.Unlock()
		return false
	}
	p.lastID++
	id := p.lastID
	// Control holds the descriptor open; p.mu keeps the epoll instance
	// open. Only epoll_ctl runs under the lock, and it does not block.
	var aerr error
	if err := rc.Control(func(fd uintptr) { aerr = p.arm(int(fd), id, &s.park.added) }); err != nil {
		aerr = err
	}
	if aerr != nil {
		p.mu.Unlock()
		p.log.Debug("websocket connection not parked", "err", aerr)
		return false
	}
	p.parked[id] = s
	s.park.id = id
	p.mu.Unlock()
	// The end of a connection (conn.Finish) wakes a parked read loop,
	// but one that ran before s was in the table found nothing to wake:
	// take s back then.
	if s.c.isFinished() && p.take(s) {
		return false
	}
	return true
}

// arm adds fd to the epoll set, or re-arms it, with id as the event's data;
// p.mu is held.
func (p *poller) arm(fd int, id uint64, added *bool) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	op := unix.EPOLL_CTL_ADD
	if *added {
		op = unix.EPOLL_CTL_MOD
	}
	err := unix.EpollCtl(p.epfd, op, fd, &ev)
	switch {
	case errors.Is(err, unix.EEXIST):
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
	case errors.Is(err, unix.ENOENT):
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	*added = err == nil
	if err != nil {
		return fmt.Errorf("websocket: epoll_ctl: %w", err)
	}
	return nil
}

// eventID is the id park put in an event.
func eventID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// unpark starts the read loop of s if it is parked. Its socket stays in
// the epoll set: an event for its old id finds nothing.
func (p *poller) unpark(s *session) {
	if p.take(s) {
		p.resume(s)
	}
}

// take removes s from the table, reporting whether it was there: the
// caller then starts its read loop.
func (p *poller) take(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.park.id == 0 {
		return false
	}
	delete(p.parked, s.park.id)
	s.park.id = 0
	return true
}

// startLocked makes the epoll instance and starts the poll goroutine the
// first time, and reports whether sockets can be parked; p.mu is held.
func (p *poller) startLocked() bool {
	if p.err != nil {
		return false
	}
	if p.done != nil {
		return true
	}
	epfd, wake, err := openEpoll()
	if err != nil {
		p.err = err
		p.log.Warn("websocket epoll unavailable: idle connections keep a goroutine each", "err", err)
		return false
	}
	p.epfd, p.wake = epfd, wake
	p.parked = make(map[uint64]*session)
	p.done = make(chan struct{})
	go p.run()
	return true
}

// openEpoll makes an epoll instance with an eventfd in it (event data 0,
// an id park never gives).
func openEpoll() (epfd, wake int, err error) {
	epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, -1, fmt.Errorf("websocket: epoll_create1: %w", err)
	}
	wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return -1, -1, fmt.Errorf("websocket: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(wake)
		_ = unix.Close(epfd)
		return -1, -1, fmt.Errorf("websocket: epoll_ctl eventfd: %w", err)
	}
	return epfd, wake, nil
}

// run is the poll goroutine: it starts the read loops of the sockets that
// became readable until the Handler closes or epoll_wait fails, and on its
// way out starts those of all still parked.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, pollBatch)
	var ready []*session
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		p.mu.Lock()
		if err != nil && p.err == nil {
			p.err = fmt.Errorf("websocket: epoll_wait: %w", err)
			p.log.Error("websocket epoll failed: idle connections keep a goroutine each from now on", "err", err)
		}
		stop := p.err != nil
		if stop {
			for _, s := range p.parked {
				ready = append(ready, s)
			}
		} else {
			for i := range events[:max(n, 0)] {
				if s, ok := p.parked[eventID(&events[i])]; ok {
					ready = append(ready, s)
				}
			}
		}
		for _, s := range ready {
			delete(p.parked, s.park.id)
			s.park.id = 0
		}
		p.mu.Unlock()
		for i, s := range ready {
			p.resume(s)
			ready[i] = nil
		}
		ready = ready[:0]
		if stop {
			return
		}
	}
}

// close stops the poll goroutine, which starts the read loops of the
// sessions still parked, and closes the epoll instance.
func (p *poller) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.err == nil {
		p.err = errPollerClosed
	}
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil // never started
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(p.wake, one[:]); err != nil {
		return fmt.Errorf("websocket: wake the poller: %w", err)
	}
	<-done
	if err := errors.Join(unix.Close(p.epfd), unix.Close(p.wake)); err != nil {
		return fmt.Errorf("websocket: close epoll: %w", err)
	}
	return nil
}
