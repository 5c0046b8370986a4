package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run, in order. Publications carry the measured flag only when
// sent in phaseMeasure; subscribers count as ready once they receive a
// publication from phaseProbe on.
const (
	phaseConnect int32 = iota
	phaseProbe
	phaseWarmup
	phaseMeasure
	phaseStop
)

// pollInterval is how often a run checks a condition it waits for.
const pollInterval = 5 * time.Millisecond

// run is the state of one Run.
type run struct {
	opts    Options
	textLen int    // bytes of each publication's text
	pubURL  string // full-protocol endpoint
	// channels[i] is channel i's name, which publishers publish to, and
	// subURLs[i] where its subscribers connect.
	channels, subURLs []string
	// pubHeads[i] is how a publication push of channel i starts.
	pubHeads [][]byte
	// subsPerChannel[i] is how many subscribers of channel i connected; it
	// is fixed before publishers start.
	subsPerChannel []int64
	lat            *latencies

	phase     atomic.Int32
	stop      chan struct{} // closed: publishers stop writing
	stopOnce  sync.Once
	closing   atomic.Bool // connections are being closed by the run
	closeOnce sync.Once

	subs []*subscriber // connected
	pubs []*publisher  // connected

	errMu    sync.Mutex
	connErrs map[string]int
}

// Run runs the scenario of opts against a server and reports what it
// measured. It returns an error wrapping ErrOptions for options that cannot
// work, ErrNoConnection when no subscriber or no publisher could connect,
// and ctx's error when ctx ends first; with the last two it also returns
// the report so far. Every connection is closed when Run returns.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r := newRun(opts)
	defer r.closeAll()
	switch opts.Scenario {
	case Idle:
		return r.idle(ctx)
	case Storm:
		return r.storm(ctx)
	}
	return r.fanout(ctx)
}

func newRun(opts Options) *run {
	base := strings.TrimSuffix(opts.URL, "/")
	r := &run{
		opts:           opts,
		textLen:        max(0, opts.MessageSize-len(`{"text":""}`)),
		pubURL:         base + "/connection/websocket",
		channels:       make([]string, opts.Channels),
		subURLs:        make([]string, opts.Channels),
		pubHeads:       make([][]byte, opts.Channels),
		subsPerChannel: make([]int64, opts.Channels),
		lat:            newLatencies(),
		stop:           make(chan struct{}),
		connErrs:       make(map[string]int),
	}
	for i := range opts.Channels {
		if opts.PusherKey != "" {
			r.channels[i] = opts.PusherNamespace + ":" + opts.ChannelPrefix + "-" + strconv.Itoa(i)
			r.subURLs[i] = base + "/app/" + url.PathEscape(opts.PusherKey) + "?protocol=7&client=redcast-bench"
			continue
		}
		if opts.PlainRoom == "" {
			r.channels[i] = opts.ChannelPrefix + "-" + strconv.Itoa(i)
			r.subURLs[i] = r.pubURL
			continue
		}
		room := opts.PlainRoom
		if opts.Channels > 1 {
			room += "-" + strconv.Itoa(i)
		}
		r.channels[i] = "chat:" + room
		r.subURLs[i] = base + "/rooms/" + url.PathEscape(room)
	}
	for i, ch := range r.channels {
		r.pubHeads[i] = publicationHead(ch)
	}
	return r
}

// source returns the local address of connection i (invalid: any).
func (r *run) source(i int) netip.Addr {
	if len(r.opts.SourceAddrs) == 0 {
		return netip.Addr{}
	}
	return r.opts.SourceAddrs[i%len(r.opts.SourceAddrs)]
}

func (r *run) newReport() *Report {
	o := r.opts
	rep := &Report{
		Scenario:    o.Scenario,
		Mode:        "protocol",
		URL:         o.URL,
		Subscribers: o.Subscribers,
		Channels:    o.Channels,
		Publishers:  o.Publishers,
		Rate:        o.Rate,
		MessageSize: o.MessageSize,
		InFlight:    o.InFlight,
		LoadGen:     CPUUse{GOMAXPROCS: runtime.GOMAXPROCS(0)},
	}
	switch {
	case o.PlainRoom != "":
		rep.Mode = "plain"
	case o.PusherKey != "":
		rep.Mode = "pusher"
	}
	if o.Scenario == Fanout {
		rep.Warmup = o.Warmup
	}
	if o.ServerPID > 0 {
		rep.Server = &Server{PID: o.ServerPID}
	}
	return rep
}

// fanout runs the fanout scenario.
func (r *run) fanout(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	r.serverRSS(rep, rssBefore)
	if err := r.connectSubscribers(ctx, rep); err != nil {
		return rep, err
	}
	r.serverRSS(rep, rssConnected)
	if err := r.connectPublishers(ctx); err != nil {
		return rep, err
	}
	if err := r.probe(ctx, rep); err != nil {
		return rep, err
	}
	r.phase.Store(phaseWarmup)
	r.opts.Logger.Info("warming up", "for", r.opts.Warmup)
	if err := sleep(ctx, r.opts.Warmup); err != nil {
		return rep, err
	}
	r.opts.Logger.Info("measuring", "for", r.opts.Duration)
	start := r.mark(rep)
	r.phase.Store(phaseMeasure)
	if err := sleep(ctx, r.opts.Duration); err != nil {
		return rep, err
	}
	r.phase.Store(phaseStop)
	end := r.mark(rep)
	r.stopPublishing()
	r.window(rep, start, end)
	if s := rep.Server; s != nil && end.received > start.received {
		s.CPUPerDelivery = float64(s.CPU) / float64(end.received-start.received)
		if s.Writes > 0 {
			s.DeliveriesPerWrite = float64(end.received-start.received) / float64(s.Writes)
		}
	}
	r.opts.Logger.Info("waiting for replies and deliveries")
	if err := r.awaitAcks(ctx); err != nil {
		return rep, err
	}
	if err := r.drain(ctx); err != nil {
		return rep, err
	}
	r.serverRSS(rep, rssEnd)
	r.tallyPublishes(rep)
	rep.Publishes.PerSecond = float64(rep.Publishes.Sent) / rep.Window.Seconds()
	r.tallyDeliveries(rep)
	rep.Latency = r.lat.summary()
	r.closeAll()
	r.tallyDisconnects(rep)
	return rep, nil
}

// idle runs the idle scenario.
func (r *run) idle(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	r.serverRSS(rep, rssBefore)
	if err := r.connectSubscribers(ctx, rep); err != nil {
		return rep, err
	}
	r.serverRSS(rep, rssConnected)
	r.opts.Logger.Info("idling", "for", r.opts.Duration)
	start := r.mark(rep)
	if err := sleep(ctx, r.opts.Duration); err != nil {
		return rep, err
	}
	end := r.mark(rep)
	r.window(rep, start, end)
	r.serverRSS(rep, rssEnd)
	r.closeAll()
	r.tallyDisconnects(rep)
	return rep, nil
}

// storm runs the connect-storm scenario: the window is the connecting.
func (r *run) storm(ctx context.Context) (*Report, error) {
	rep := r.newReport()
	r.serverRSS(rep, rssBefore)
	start := r.mark(rep)
	if err := r.connectSubscribers(ctx, rep); err != nil {
		return rep, err
	}
	end := r.mark(rep)
	r.window(rep, start, end)
	r.serverRSS(rep, rssConnected)
	if err := r.connectPublishers(ctx); err != nil {
		return rep, err
	}
	if err := r.probe(ctx, rep); err != nil {
		return rep, err
	}
	r.phase.Store(phaseStop)
	r.stopPublishing()
	r.serverRSS(rep, rssEnd)
	r.closeAll()
	r.tallyDisconnects(rep)
	return rep, nil
}

// connectSubscribers opens the subscriber connections, ConnectConcurrency
// at a time, and starts their readers.
func (r *run) connectSubscribers(ctx context.Context, rep *Report) error {
	n := r.opts.Subscribers
	r.opts.Logger.Info("connecting subscribers", "n", n, "concurrency", r.opts.ConnectConcurrency, "mode", rep.Mode)
	conns := make([]*subscriber, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(r.opts.ConnectConcurrency, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s, err := r.connectSubscriber(ctx, i)
				if err != nil {
					r.connFailed(err)
					continue
				}
				go s.readLoop()
				conns[i] = s
			}
		})
	}
	wg.Wait()
	rep.Connections.ConnectTime = time.Since(start)
	for _, s := range conns {
		if s != nil {
			r.subs = append(r.subs, s)
			r.subsPerChannel[s.channel]++
		}
	}
	rep.Connections.OK = len(r.subs)
	rep.Connections.Failed = n - len(r.subs)
	r.errMu.Lock()
	if len(r.connErrs) > 0 {
		rep.Connections.Errors = r.connErrs
	}
	r.errMu.Unlock()
	r.opts.Logger.Info("subscribers connected", "ok", rep.Connections.OK, "failed", rep.Connections.Failed,
		"in", rep.Connections.ConnectTime.Round(time.Millisecond))
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(r.subs) == 0 {
		return fmt.Errorf("%w: none of %d subscribers connected to %s", ErrNoConnection, n, r.subURLs[0])
	}
	return nil
}

func (r *run) connFailed(err error) {
	r.errMu.Lock()
	r.connErrs[errKey(err)]++
	r.errMu.Unlock()
}

// connectPublishers opens the publisher connections and starts their
// readers; their writers start with the probe.
func (r *run) connectPublishers(ctx context.Context) error {
	var errs []error
	for k := range r.opts.Publishers {
		p, err := r.connectPublisher(ctx, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		go p.readLoop()
		r.pubs = append(r.pubs, p)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %d of %d publishers could not connect: %w", ErrNoConnection, len(errs), r.opts.Publishers, errs[0])
	}
	return nil
}

// probe starts publishing and waits until every subscriber has received a
// publication (a plain-mode client has no other way to tell that it is
// subscribed), for at most readyTimeout.
func (r *run) probe(ctx context.Context, rep *Report) error {
	r.phase.Store(phaseProbe)
	start := time.Now()
	for _, p := range r.pubs {
		go p.writeLoop()
	}
	var done int
	err := poll(ctx, readyTimeout, func() bool {
		for ; done < len(r.subs); done++ {
			s := r.subs[done]
			if s.readyAt.Load() == 0 && !isClosed(s.done) {
				return false
			}
		}
		return true
	})
	if err != nil && !errors.Is(err, errPollTimeout) {
		return err
	}
	var last int64
	for _, s := range r.subs {
		at := s.readyAt.Load()
		if at == 0 {
			rep.Connections.NotReady++
		}
		last = max(last, at)
	}
	if last > 0 {
		rep.Connections.ReadyTime = time.Unix(0, last).Sub(start)
	}
	r.opts.Logger.Info("subscribers receiving", "after", rep.Connections.ReadyTime.Round(time.Millisecond), "not_ready", rep.Connections.NotReady)
	return nil
}

// stopPublishing tells the publishers' writers to stop.
func (r *run) stopPublishing() {
	r.stopOnce.Do(func() { close(r.stop) })
}

// awaitAcks waits for the writers to stop and for the replies to what they
// sent, for at most ackTimeout.
func (r *run) awaitAcks(ctx context.Context) error {
	for _, p := range r.pubs {
		select {
		case <-p.writerDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := poll(ctx, ackTimeout, func() bool {
		for _, p := range r.pubs {
			if p.inFlight() > 0 && !isClosed(p.readerDone) {
				return false
			}
		}
		return true
	})
	if errors.Is(err, errPollTimeout) {
		return nil
	}
	return err
}

// drain waits until subscribers received every measured publication they
// are owed, or nothing arrived for drainQuiet, or drainTimeout passed.
func (r *run) drain(ctx context.Context) error {
	var expected int64
	for _, p := range r.pubs {
		expected += p.expected.Load()
	}
	last, quietSince := int64(-1), time.Now()
	err := poll(ctx, drainTimeout, func() bool {
		var got int64
		for _, s := range r.subs {
			got += s.measured.Load()
		}
		if got != last {
			last, quietSince = got, time.Now()
		}
		return got >= expected || time.Since(quietSince) >= drainQuiet
	})
	if errors.Is(err, errPollTimeout) {
		return nil
	}
	return err
}

// closeAll closes every connection and waits for the goroutines.
func (r *run) closeAll() {
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		r.stopPublishing()
		for _, p := range r.pubs {
			p.c.close()
		}
		for _, s := range r.subs {
			s.c.close()
		}
		for _, p := range r.pubs {
			<-p.readerDone
			// A writer starts with the probe: one that never started
			// has nothing to wait for.
			if r.phase.Load() >= phaseProbe {
				<-p.writerDone
			}
		}
		for _, s := range r.subs {
			<-s.done
		}
	})
}

// mark is a snapshot of the counters at one instant.
type mark struct {
	at        time.Time
	cpu       time.Duration
	serverCPU time.Duration
	writes    int64 // the server's write system calls
	received  int64 // publications received by all subscribers
	wire      int64 // bytes all subscribers read from their sockets
}

func (r *run) mark(rep *Report) mark {
	m := mark{at: time.Now(), cpu: selfCPU()}
	for _, s := range r.subs {
		m.received += s.received.Load()
		m.wire += s.wire.Load()
	}
	if srv := rep.Server; srv != nil {
		cpu, err := processCPU(srv.PID)
		if err != nil && srv.Error == "" {
			srv.Error = err.Error()
		}
		m.serverCPU = cpu
		// /proc/PID/io needs the server's user (or root): without it
		// the report shows no writes.
		m.writes, _ = processWrites(srv.PID)
	}
	return m
}

// window fills in what the report says about the window from start to end.
func (r *run) window(rep *Report, start, end mark) {
	w := end.at.Sub(start.at)
	rep.Window = w
	rep.Deliveries.PerSecond = float64(end.received-start.received) / w.Seconds()
	if n := end.received - start.received; n > 0 {
		rep.Deliveries.WireBytes = float64(end.wire-start.wire) / float64(n)
	}
	g := &rep.LoadGen
	g.CPU = end.cpu - start.cpu
	g.Utilization = g.CPU.Seconds() / (w.Seconds() * float64(g.GOMAXPROCS))
	g.Saturated = g.Utilization >= 0.9
	if s := rep.Server; s != nil {
		s.CPU = end.serverCPU - start.serverCPU
		s.Utilization = s.CPU.Seconds() / w.Seconds()
		s.Writes = end.writes - start.writes
	}
}

// Instants at which the report gives the server's RSS.
type rssPoint int

const (
	rssBefore rssPoint = iota
	rssConnected
	rssEnd
)

// serverRSS records the server's RSS at point when the report has a server.
func (r *run) serverRSS(rep *Report, point rssPoint) {
	s := rep.Server
	if s == nil {
		return
	}
	rss, err := processRSS(s.PID)
	if err != nil {
		if s.Error == "" {
			s.Error = err.Error()
		}
		return
	}
	switch point {
	case rssBefore:
		s.RSSBefore = rss
	case rssConnected:
		s.RSSConnected = rss
	case rssEnd:
		s.RSSEnd = rss
	}
	if n := int64(rep.Connections.OK); n > 0 {
		if s.RSSConnected > 0 {
			s.RSSPerConnection = (s.RSSConnected - s.RSSBefore) / n
		}
		if s.RSSEnd > 0 {
			s.RSSEndPerConnection = (s.RSSEnd - s.RSSBefore) / n
		}
	}
}

// tallyPublishes adds up the publishers' counts.
func (r *run) tallyPublishes(rep *Report) {
	p := &rep.Publishes
	for _, pub := range r.pubs {
		p.Sent += pub.sent.Load()
		p.Acked += pub.acked.Load()
		p.Failed += pub.failed.Load()
		p.Total += pub.written.Load()
		for code, n := range pub.errCounts() {
			if p.Errors == nil {
				p.Errors = make(map[int]int64)
			}
			p.Errors[code] += n
		}
		if isClosed(pub.readerDone) {
			p.PublishersLost++
		}
	}
	p.Unacked = p.Sent - p.Acked - p.Failed
}

// tallyDeliveries adds up what the subscribers received.
func (r *run) tallyDeliveries(rep *Report) {
	d := &rep.Deliveries
	for _, p := range r.pubs {
		d.Expected += p.expected.Load()
	}
	for _, s := range r.subs {
		d.Received += s.measured.Load()
		d.Duplicates += s.dups.Load()
		d.Malformed += s.bad.Load()
	}
	d.Lost = max(0, d.Expected-d.Received)
}

// tallyDisconnects counts the subscribers whose connection ended before
// the run closed it; call it after closeAll.
func (r *run) tallyDisconnects(rep *Report) {
	c := &rep.Connections
	for _, s := range r.subs {
		if !s.early {
			continue
		}
		c.Disconnected++
		if c.Disconnects == nil {
			c.Disconnects = make(map[string]int)
		}
		c.Disconnects[errKey(s.err)]++
	}
}

// errKey names an error for counting: without the addresses that make
// every connection's error unique.
func errKey(err error) string {
	var ce *closeError
	var oe *net.OpError
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d %s", ce.code, ce.reason)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server (EOF)"
	case errors.As(err, &oe):
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

var errPollTimeout = errors.New("loadgen: timed out")

// poll calls cond every pollInterval until it returns true, ctx ends
// (ctx's error) or timeout passes (errPollTimeout).
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errPollTimeout
		case <-tick.C:
		}
	}
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
