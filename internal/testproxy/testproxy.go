// Package testproxy is a TCP proxy for tests that need to drop a client's
// connection without the server's help (as a network failure would), keep
// a client away for a while, or freeze a connection: keep it open but
// forward nothing, as a network path that silently stopped working.
package testproxy

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from a local port to a target. Its
// methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	thawed   *sync.Cond // signalled when frozen pairs may move again; uses mu
	conns    map[net.Conn]struct{}
	pairs    []*pair // every pair accepted, in order
	refuse   bool
	closed   bool
	accepted int
}

// pair is one proxied connection: the client's and the target's ends.
type pair struct {
	in, out net.Conn
	frozen  bool // guarded by Proxy.mu
	gone    bool // closed; guarded by Proxy.mu
}

// New listens on a random loopback port and forwards to target
// (host:port). It is closed, with every connection it carries, when the
// test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testproxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Go(p.acceptLoop)
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every connection under way, both ends.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	for _, pr := range p.pairs {
		pr.gone = true
	}
	p.thawed.Broadcast()
}

// Accepted returns how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Freeze stops forwarding on the connections under way that were accepted
// after the first n, in both directions, without closing them: bytes read
// meanwhile are held until Thaw. Later connections are not frozen.
func (p *Proxy) Freeze(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs[min(n, len(p.pairs)):] {
		pr.frozen = true
	}
}

// Thaw forwards again on frozen connections, what they held first.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.frozen = false
	}
	p.thawed.Broadcast()
}

// SetRefuse makes the proxy close new connections at once (or not).
func (p *Proxy) SetRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse || p.closed
		p.accepted++
		p.mu.Unlock()
		var out net.Conn
		if !refuse {
			out, err = net.Dial("tcp", p.target)
		}
		if refuse || err != nil {
			in.Close()
			continue
		}
		pr := p.track(in, out)
		if pr == nil {
			continue
		}
		p.wg.Go(func() { p.pipe(pr, in, out) })
		p.wg.Go(func() { p.pipe(pr, out, in) })
	}
}

// track registers a connection pair; it returns nil (and closes them)
// when the proxy is closing.
func (p *Proxy) track(in, out net.Conn) *pair {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		in.Close()
		out.Close()
		return nil
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	pr := &pair{in: in, out: out}
	p.pairs = append(p.pairs, pr)
	return pr
}

// pipe copies from src to dst, holding what it read while the pair is
// frozen, then closes both.
func (p *Proxy) pipe(pr *pair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitThawed(pr) {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	pr.gone = true
	p.thawed.Broadcast()
	p.mu.Unlock()
}

// waitThawed waits while the pair is frozen; it reports false once the
// pair is closed.
func (p *Proxy) waitThawed(pr *pair) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr.frozen && !pr.gone {
		p.thawed.Wait()
	}
	return !pr.gone
}
