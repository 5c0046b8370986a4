package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/redcast/redcast/protocol"
)

// Client is one connection speaking the full protocol. Create it with Dial;
// its methods are safe for concurrent use.
type Client struct {
	conn net.Conn
	br   *bufio.Reader
	opts Options
	id   string // set by Dial before the Client is returned

	lastID atomic.Uint32
	// readTimeout is how long the reader waits for a frame (nanoseconds; 0:
	// forever); set once connect tells the server's ping interval.
	readTimeout atomic.Int64

	// wake tells the writer there is something to write; quit is closed
	// when the connection ends (err is set); done when both goroutines have
	// exited.
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	running atomic.Int32

	// onPush receives the pushes: Options.OnPush, or the Session's router.
	onPush func(*Client, *protocol.Push)

	mu      sync.Mutex
	err     error                  // why the connection ended; nil while it is up
	pending map[uint32]func(reply) // handlers of the replies awaited, by command id
	// out holds encoded command lines, each ending in '\n', after
	// frameHeadroom bytes kept free for the first frame's header.
	out       []byte
	pong      []byte // payload of the pong to send, valid when pongDue
	pongDue   bool
	closeBody []byte // close frame payload to send when quitting; nil: none
	disc      *protocol.Disconnect
	// discReconnect is the reconnect flag of the disconnect push, when
	// disc came from one.
	discReconnect, discPush bool
}

// reply is what a pending call receives: the raw result or the error.
type reply struct {
	result json.RawMessage
	err    error
}

// frameHeadroom is the room kept in front of the write buffer for a frame
// header, so that a frame goes out in one write without copying.
const frameHeadroom = ws.MaxHeaderSize

// Dial connects to the full-protocol endpoint at url (such as
// "ws://localhost:8080/connection/websocket"), sends connect with
// opts.Name and opts.Token, and returns once the server accepted it. ctx
// bounds the dial and the connect; it does not affect the returned Client.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	var onPush func(*Client, *protocol.Push)
	if opts.OnPush != nil {
		onPush = func(_ *Client, p *protocol.Push) { opts.OnPush(p) }
	}
	return dialConn(ctx, url, opts, onPush)
}

// dialConn is Dial with the pushes going to onPush (which may be nil).
func dialConn(ctx context.Context, url string, opts Options, onPush func(*Client, *protocol.Push)) (*Client, error) {
	var d ws.Dialer
	if opts.Header != nil {
		d.Header = ws.HandshakeHeaderHTTP(opts.Header)
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	c := newClient(conn, br, opts, onPush)
	var res protocol.ConnectResult
	err = c.call(ctx, protocol.MethodConnect, protocol.ConnectParams{Token: opts.Token, Name: opts.Name}, &res)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("client: connect: %w", err)
	}
	c.id = res.Client
	interval := time.Duration(res.PingMS) * time.Millisecond
	if interval == 0 { // a server older than ping_ms
		interval = time.Duration(res.Ping) * time.Second
	}
	if interval > 0 && c.opts.PingTimeout > 0 {
		d := interval + c.opts.PingTimeout
		c.readTimeout.Store(int64(d))
		// The reader is already waiting for a frame without a deadline.
		_ = c.conn.SetReadDeadline(time.Now().Add(d))
	}
	return c, nil
}

// newClient starts the reader and writer of an upgraded connection. br
// holds what the server sent after the handshake, if anything.
func newClient(conn net.Conn, br *bufio.Reader, opts Options, onPush func(*Client, *protocol.Push)) *Client {
	c := &Client{
		conn:    conn,
		opts:    opts.withDefaults(),
		onPush:  onPush,
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		pending: make(map[uint32]func(reply)),
		out:     make([]byte, frameHeadroom, 512),
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	c.br = br
	c.running.Store(2)
	go c.readLoop()
	go c.writeLoop()
	return c
}

// ID returns the id the server gave this connection.
func (c *Client) ID() string { return c.id }

// Done returns a channel that is closed when the connection has ended and
// the client's goroutines have exited.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up. After Close
// it is ErrClosed unless the connection had ended before.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection with a normal close frame, fails pending calls
// with ErrClosed and waits for the client's goroutines to exit, which takes
// at most Options.WriteTimeout (when a write to an unresponsive server is
// under way). It is idempotent and always returns nil.
func (c *Client) Close() error {
	c.fail(ErrClosed, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	<-c.done
	return nil
}

// fail ends the connection with err, unless it has already ended: pending
// calls receive err and the writer sends closeBody (if not nil) in a close
// frame, then closes the socket.
func (c *Client) fail(err error, closeBody []byte) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.closeBody = closeBody
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	close(c.quit)
	for _, fn := range pending {
		fn(reply{err: err})
	}
}

// ended reports whether the connection has ended (fail was called).
func (c *Client) ended() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// maxAdvisedDelay caps the reconnect delay (ms) a server may advise.
const maxAdvisedDelay = 60_000

// advisedDelay returns the reconnect delay the server's disconnect push
// advised, 0 when none.
func (c *Client) advisedDelay() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disc == nil {
		return 0
	}
	return c.disc.Delay
}

// reconnectAdvice returns the reconnect flag of the disconnect push the
// server sent, if it sent one.
func (c *Client) reconnectAdvice() (reconnect, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.discReconnect, c.discPush
}

// exited is called by each of the two goroutines as it returns.
func (c *Client) exited() {
	if c.running.Add(-1) == 0 {
		close(c.done)
	}
}

// call sends a command and waits for its reply, decoding the result into
// result when it is not nil.
func (c *Client) call(ctx context.Context, method string, params, result any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := make(chan reply, 1)
	id, err := c.send(method, params, func(r reply) { ch <- r })
	if err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if result != nil {
			if err := json.Unmarshal(r.result, result); err != nil {
				return fmt.Errorf("%w: %s result: %v", ErrProtocol, method, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// send queues a command without waiting: fn receives its reply, from the
// reader goroutine before the lines that follow the reply are handled, or
// the error that ended the connection, from the goroutine that ended it. fn
// runs without c.mu held and must not block. send returns the command's id.
func (c *Client) send(method string, params any, fn func(reply)) (uint32, error) {
	var p []byte
	if params != nil {
		var err error
		if p, err = marshal(params); err != nil {
			return 0, fmt.Errorf("client: encode %s params: %w", method, err)
		}
	}
	id := c.lastID.Add(1)
	if id == 0 { // wrapped around; 0 is not a valid command id
		id = c.lastID.Add(1)
	}
	return id, c.queue(id, method, p, fn)
}

// queue registers fn for the reply to command id and appends the command
// line to the write buffer.
func (c *Client) queue(id uint32, method string, params []byte, fn func(reply)) error {
	// {"id":N,"method":"M","params":P}\n
	size := len(`{"id":4294967295,"method":"","params":}`) + len(method) + len(params)
	if size > c.opts.MaxFrameSize {
		return fmt.Errorf("%w: %s command of about %d bytes, limit %d", ErrFrameTooLarge, method, size, c.opts.MaxFrameSize)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.pending[id] = fn
	b := append(c.out, `{"id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"method":"`...)
	b = append(b, method...)
	b = append(b, '"')
	if params != nil {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	c.out = append(b, "}\n"...)
	c.mu.Unlock()
	c.signal()
	return nil
}

// signal wakes the writer.
func (c *Client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// marshal encodes v as JSON like json.Marshal, but leaves <, > and &
// alone: publications reach other clients as they were written.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
