package loadgen

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/internal/wsframe"
)

// maxCommandFrame is the largest frame a publisher sends: several pipelined
// publish commands go in one frame up to it (servers accept 64 KiB frames
// by default).
const maxCommandFrame = 60 << 10

// publisher is one publisher connection: a writer goroutine that sends
// publish commands at a rate or as fast as its in-flight window allows, and
// a reader goroutine that matches the replies by id.
type publisher struct {
	run   *run
	index int
	c     *conn
	// slots is the in-flight window: the writer puts one token per publish
	// sent, the reader takes one per reply.
	slots chan struct{}
	// pending[id % InFlight] is channel<<1 | measured of the publish with
	// that id while it waits for its reply.
	pending []atomic.Uint64

	// writer state
	nextID         uint32
	n              uint64   // publications written
	seq            []uint64 // per channel
	payload, frame []byte

	written  atomic.Int64 // publications written, all phases
	sent     atomic.Int64 // measured publications written
	acked    atomic.Int64 // measured publications acknowledged
	failed   atomic.Int64 // measured publications refused
	expected atomic.Int64 // deliveries the acknowledged measured publications owe

	errMu sync.Mutex
	errs  map[int]int64 // error code → replies, all phases

	readerDone, writerDone chan struct{}
	readErr, writeErr      error
	early                  bool // the reader stopped before the run closed the connection
}

const idFirstPublish = 2

// connectPublisher opens publisher k's connection and connects.
func (r *run) connectPublisher(ctx context.Context, k int) (*publisher, error) {
	c, err := dial(ctx, r.pubURL, r.source(r.opts.Subscribers+k), r.opts.Compression)
	if err != nil {
		return nil, err
	}
	cmd := fmt.Appendf(nil, "{\"id\":%d,\"method\":\"connect\",\"params\":{\"name\":\"bench-publisher-%d\"}}", idConnect, k)
	if err := c.write(wsframe.AppendClientFrame(nil, ws.OpText, cmd)); err != nil {
		_ = c.nc.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	_ = c.nc.SetReadDeadline(time.Now().Add(connectTimeout))
	for connected := false; !connected; {
		p, err := c.next()
		if err != nil {
			_ = c.nc.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		for line := range lines(p) {
			if id, code, ok := parseReply(line); ok && id == idConnect {
				if code != 0 {
					_ = c.nc.Close()
					return nil, fmt.Errorf("connect: error %d: %s", code, line)
				}
				connected = true
			}
		}
	}
	if !stop() {
		_ = c.nc.Close()
		return nil, ctx.Err()
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return &publisher{
		run:        r,
		index:      k,
		c:          c,
		slots:      make(chan struct{}, r.opts.InFlight),
		pending:    make([]atomic.Uint64, r.opts.InFlight),
		nextID:     idFirstPublish,
		seq:        make([]uint64, r.opts.Channels),
		errs:       make(map[int]int64),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}, nil
}

// readLoop matches replies to publishes until the connection ends.
func (p *publisher) readLoop() {
	defer close(p.readerDone)
	window := uint32(len(p.pending))
	for {
		frame, err := p.c.next()
		if err != nil {
			p.readErr, p.early = err, !p.run.closing.Load()
			return
		}
		for line := range lines(frame) {
			id, code, ok := parseReply(line)
			if !ok || id < idFirstPublish {
				continue
			}
			v := p.pending[id%window].Load()
			ch, measured := int(v>>1), v&1 == 1
			switch {
			case code != 0:
				p.errMu.Lock()
				p.errs[code]++
				p.errMu.Unlock()
				if measured {
					p.failed.Add(1)
				}
			case measured:
				p.acked.Add(1)
				p.expected.Add(p.run.subsPerChannel[ch])
			}
			select {
			case <-p.slots:
			default: // a reply to nothing we sent: ignore it
			}
		}
	}
}

// inFlight returns how many publishes wait for their reply.
func (p *publisher) inFlight() int { return len(p.slots) }

// writeLoop publishes until the run stops publishing or the connection
// fails.
func (p *publisher) writeLoop() {
	defer close(p.writerDone)
	r := p.run
	window := r.opts.InFlight
	perSecond := r.opts.Rate / float64(r.opts.Publishers)
	var tick <-chan time.Time
	if perSecond > 0 {
		interval := max(time.Millisecond, time.Duration(float64(time.Second)/perSecond))
		// Publishers start at even offsets within the interval: started
		// together, a thousand publishers at one message a second each
		// would send a burst of a thousand every second instead of a
		// steady 1,000/s.
		phase := time.NewTimer(interval * time.Duration(p.index) / time.Duration(r.opts.Publishers))
		select {
		case <-phase.C:
		case <-r.stop:
			phase.Stop()
			return
		case <-p.readerDone:
			phase.Stop()
			return
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	for {
		want := window
		if tick != nil {
			select {
			case <-tick:
			case <-r.stop:
				return
			case <-p.readerDone:
				return
			}
			due := uint64(perSecond*time.Since(start).Seconds()) - p.n
			if due == 0 || due > 1<<62 {
				continue
			}
			want = int(min(due, uint64(window)))
		}
		// Wait for one slot of the window, then take what else is free.
		select {
		case p.slots <- struct{}{}:
		case <-r.stop:
			return
		case <-p.readerDone:
			return
		}
		k := 1
	fill:
		for k < want {
			select {
			case p.slots <- struct{}{}:
				k++
			default:
				break fill
			}
		}
		phase := r.phase.Load()
		if phase >= phaseStop {
			for range k {
				<-p.slots
			}
			return
		}
		if err := p.publish(k, phase == phaseMeasure); err != nil {
			p.writeErr = err
			return
		}
	}
}

// publish writes k publish commands, pipelined in as few frames as fit.
func (p *publisher) publish(k int, measured bool) error {
	r := p.run
	window := uint32(len(p.pending))
	var flag uint64
	if measured {
		flag = 1
	}
	now := time.Now().UnixNano()
	p.frame, p.payload = p.frame[:0], p.payload[:0]
	for range k {
		ch := int((uint64(p.index) + p.n*uint64(r.opts.Publishers)) % uint64(r.opts.Channels))
		p.n++
		p.seq[ch]++
		id := p.nextID
		if p.nextID++; p.nextID == 0 {
			p.nextID = idFirstPublish
		}
		p.pending[id%window].Store(uint64(ch)<<1 | flag)
		if len(p.payload) > 0 {
			if len(p.payload)+r.textLen+256 > maxCommandFrame {
				p.frame = wsframe.AppendClientFrame(p.frame, ws.OpText, p.payload)
				p.payload = p.payload[:0]
			} else {
				p.payload = append(p.payload, '\n')
			}
		}
		p.payload = append(p.payload, `{"id":`...)
		p.payload = strconv.AppendUint(p.payload, uint64(id), 10)
		p.payload = append(p.payload, `,"method":"publish","params":{"channel":"`...)
		p.payload = append(p.payload, r.channels[ch]...)
		p.payload = append(p.payload, `","data":{"text":"`...)
		p.payload = appendText(p.payload, stamp{measured: measured, sent: now, publisher: p.index, seq: p.seq[ch]}, r.textLen)
		p.payload = append(p.payload, `"}}}`...)
	}
	p.frame = wsframe.AppendClientFrame(p.frame, ws.OpText, p.payload)
	p.written.Add(int64(k))
	if measured {
		p.sent.Add(int64(k))
	}
	return p.c.write(p.frame)
}

// errCounts returns a copy of the error replies by code.
func (p *publisher) errCounts() map[int]int64 {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	out := make(map[int]int64, len(p.errs))
	for k, v := range p.errs {
		out[k] = v
	}
	return out
}

// stopReason says why a publisher stopped; call it after both its
// goroutines ended.
func (p *publisher) stopReason() error {
	return errors.Join(p.readErr, p.writeErr)
}
