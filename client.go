package redcast

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// Client is the protocol session of one connection. The transport calls
// HandleFrame and Flush (full protocol) or the plain-mode methods from its
// read goroutine, one at a time, and Closed exactly once when the
// connection is gone. Other methods are safe for concurrent use.
//
// Everything the client sends goes through its outbox, which the transport
// made: replies, pushes of its subscriptions, and the end (Disconnect).
type Client struct {
	node   *Node
	out    *outbox.Outbox
	format hub.Format
	framer hub.Framer // frames broadcasts (WebSocket compression); nil: none
	info   *protocol.ClientInfo
	// ctx is cancelled when the client closes, stopping broker calls made
	// on its behalf.
	ctx    context.Context
	cancel context.CancelFunc

	// closeCode is the code of the first Disconnect, 0 while there was none
	// (for metrics: who closed the connection).
	closeCode atomic.Uint32

	// echo (plain mode) delivers the client's own publications back to it.
	echo bool

	// pubLimit and subLimit are the connection's rate limits; refusals
	// counts commands refused in a row by them (read goroutine only).
	// pubLimit is made by the first publish (publishLimit): most
	// connections only subscribe.
	pubLimit, subLimit *rate.Limiter
	refusals           int

	mu          sync.Mutex
	connected   bool
	creds       *auth.Credentials        // nil for anonymous clients
	tokens      tokenRefs                // what the client's tokens are revoked by (revoke.go)
	checks      map[*tokenCheck]struct{} // tokens admit is checking (revoke.go)
	expiry      tokenExpiry
	closed      bool
	subs        map[string]*subscription
	connectTime *time.Timer

	// pubs are the publishes of the current frame waiting to be sent to
	// the broker together (read goroutine only; see publish.go).
	pubs []queuedPublish

	// px is what calls to the backend need (see proxy.go).
	px proxyConn
}

// NewClient registers a connection with the node. out is the connection's
// outbox (made with the node's OutboxOptions), format the wire format its
// sink writes. It returns ErrDraining after Shutdown began, and
// ErrConnectionLimit when the node is full: the transport then closes out
// itself.
func (n *Node) NewClient(out *outbox.Outbox, format hub.Format) (*Client, error) {
	return n.NewClientWith(out, format, ClientOptions{})
}

// NewClientWith is NewClient with options, for the transports of other
// protocols (see ClientOptions).
func (n *Node) NewClientWith(out *outbox.Outbox, format hub.Format, opts ClientOptions) (*Client, error) {
	id := opts.ID
	if id == "" {
		id = newClientID()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		node:   n,
		out:    out,
		format: format,
		framer: opts.Framer,
		info:   &protocol.ClientInfo{Client: id},
		ctx:    ctx,
		cancel: cancel,
		subs:   make(map[string]*subscription),

		subLimit: newLimiter(n.cfg.SubscribeRate, n.cfg.SubscribeBurst),
		px:       proxyConn{header: opts.Header, transport: opts.Transport},
	}
	if c.px.transport == "" {
		c.px.transport = "websocket"
	}
	if err := n.register(c); err != nil {
		cancel()
		return nil, err
	}
	if format == hub.FormatProtocol {
		c.connectTime = time.AfterFunc(n.cfg.ConnectTimeout, func() {
			c.mu.Lock()
			late := !c.connected
			c.mu.Unlock()
			if late {
				c.Disconnect(protocol.DisconnectNoConnect)
			}
		})
	}
	return c, nil
}

// ID returns the connection's id.
func (c *Client) ID() string { return c.info.Client }

// Disconnect closes the connection with d. It never blocks.
func (c *Client) Disconnect(d protocol.Disconnect) {
	c.closeCode.CompareAndSwap(0, uint32(d.Code))
	c.node.log.Debug("disconnecting client", "client", c.ID(), "code", d.Code, "reason", d.Reason)
	c.out.Close(d)
}

// send queues msg, disconnecting the client as a slow consumer when its
// queue is full.
func (c *Client) send(msg []byte) {
	if !c.out.Push(msg) {
		c.Disconnect(protocol.DisconnectSlowConsumer)
	}
}

// deliver queues a message of a broadcast through its batch, likewise.
func (c *Client) deliver(msg []byte, b *outbox.Batch) {
	if !b.Push(c.out, msg) {
		c.Disconnect(protocol.DisconnectSlowConsumer)
	}
}

// errClientClosed ends the outbox of a client released before its
// transport ended it.
var errClientClosed = errors.New("redcast: client closed")

// Closed releases everything the client holds: its subscriptions (with leave
// pushes) and its registration. The transport calls it once, after the
// connection is gone.
func (c *Client) Closed() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.connectTime != nil {
		c.connectTime.Stop()
	}
	c.expiry.stop()
	subs := make([]*subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	clear(c.subs)
	c.mu.Unlock()
	if errors.Is(c.out.Err(), outbox.ErrSlowConsumer) {
		c.closeCode.CompareAndSwap(0, uint32(protocol.DisconnectSlowConsumer.Code)) // a write timed out
	}
	c.out.Abort(errClientClosed) // nothing more is written, if the transport did not end it
	c.cancel()
	for _, s := range subs {
		c.unsubscribeFrom(s)
	}
	c.node.unregister(c)
	c.node.log.Debug("client closed", "client", c.ID())
}

// HandleFrame handles one text frame of the full protocol: every command in
// it, in order. Its replies wait in the outbox (held) until Flush, with
// those of the frames that follow, and so do publishes to a broker that
// batches: a client whose frames queued up while its last publish was under
// way has them published in one broker call (up to maxPublishBatch) and
// answered in one write. A transport calls Flush when it has no further
// frame at hand, before it waits for the peer.
func (c *Client) HandleFrame(frame []byte) {
	c.out.Hold()
	protocol.Lines(frame, func(line []byte) bool {
		if c.out.Crowded() {
			// Replies fill the queue faster than the client reads
			// them: stop reading its commands until they went out,
			// rather than cut it as a slow consumer.
			c.flushPublishes()
			if !c.out.WaitRoom(c.ctx.Done()) {
				return false
			}
		}
		cmd, err := protocol.DecodeCommand(line)
		if err != nil {
			c.flushPublishes()
			c.replyError(cmd.ID, err)
			return true
		}
		if cmd.Method == protocol.MethodPublish && c.node.batch != nil {
			c.queuePublish(cmd)
		} else {
			c.flushPublishes()
			c.handleCommand(cmd)
		}
		return !c.out.Closing() // disconnected meanwhile: the rest of the frame is not handled
	})
	if len(c.pubs) >= maxPublishBatch {
		c.flushPublishes()
	}
}

// Flush publishes the publishes HandleFrame held and writes every reply
// (from the calling goroutine when the connection is quiet): call it from
// the read goroutine, holding no lock.
func (c *Client) Flush() {
	c.flushPublishes()
	c.out.Release()
}

func (c *Client) handleCommand(cmd protocol.Command) {
	if cmd.Method != protocol.MethodConnect && !c.isConnected() {
		c.replyError(cmd.ID, protocol.ErrNotConnected)
		return
	}
	if cmd.Method != protocol.MethodRefresh && cmd.Method != protocol.MethodPing && c.tokenExpired() {
		c.replyError(cmd.ID, protocol.ErrTokenExpired.WithMessage("token expired: send refresh with a fresh token"))
		return
	}
	var (
		result any
		err    error
	)
	start := time.Now()
	defer func() { c.node.metrics.Command(cmd.Method).Observe(time.Since(start).Seconds()) }()
	switch cmd.Method {
	case protocol.MethodConnect:
		var p protocol.ConnectParams
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			var res *protocol.ConnectResult
			if res, err = c.Connect(p); err == nil {
				c.reply(cmd.ID, res)
				c.ConnectReplied()
				c.subscribeServerSide() // after the reply, which they follow
				return
			}
		}
	case protocol.MethodSubscribe:
		var p protocol.SubscribeParams
		if err = c.allow(c.subLimit); err != nil {
			break
		}
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			// The reply is queued by Subscribe itself, so that it goes out
			// before the live publications that follow it.
			err = c.Subscribe(p, func(res *protocol.SubscribeResult) { c.reply(cmd.ID, res) })
			if err == nil {
				return
			}
		}
	case protocol.MethodUnsubscribe:
		var p protocol.ChannelParams
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			c.Unsubscribe(p.Channel)
			result = struct{}{}
		}
	case protocol.MethodPublish:
		var p protocol.PublishParams
		if err = c.allow(c.publishLimit()); err != nil {
			break
		}
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			result, err = c.Publish(p)
		}
	case protocol.MethodHistory:
		var p protocol.HistoryParams
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			result, err = c.history(p)
		}
	case protocol.MethodPresence:
		var p protocol.ChannelParams
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			result, err = c.presence(p)
		}
	case protocol.MethodRefresh:
		var p protocol.RefreshParams
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			result, err = c.Refresh(p)
		}
	case protocol.MethodRPC:
		var p protocol.RPCParams
		// Each rpc is a call to the backend: it counts against the
		// publish rate.
		if err = c.allow(c.publishLimit()); err != nil {
			break
		}
		if err = protocol.DecodeParams(cmd, &p); err == nil {
			result, err = c.RPC(p)
		}
	case protocol.MethodPing:
		result = struct{}{}
	default:
		err = protocol.ErrUnknownMethod.WithMessage("unknown method %q", cmd.Method)
	}
	if err != nil {
		c.replyError(cmd.ID, err)
		return
	}
	c.reply(cmd.ID, result)
}

// publishLimit returns the connection's publish rate limiter, made on first
// use (read goroutine only).
func (c *Client) publishLimit() *rate.Limiter {
	if c.pubLimit == nil {
		c.pubLimit = newLimiter(c.node.cfg.PublishRate, c.node.cfg.PublishBurst)
	}
	return c.pubLimit
}

// newLimiter returns a token bucket of perSecond (negative: no limit).
func newLimiter(perSecond float64, burst int) *rate.Limiter {
	if perSecond < 0 {
		return rate.NewLimiter(rate.Inf, burst)
	}
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// allow takes a token from l for one command. Without one the command is
// refused with ErrTooManyRequests; the MaxRefusals-th refusal in a row is
// errLastRefusal, after whose answer the client is disconnected: it is not
// slowing down.
func (c *Client) allow(l *rate.Limiter) error {
	if l.Allow() {
		c.refusals = 0
		return nil
	}
	c.refusals++
	if c.refusals >= c.node.cfg.MaxRefusals {
		return errLastRefusal
	}
	return protocol.ErrTooManyRequests
}

// errLastRefusal refuses the command that ends a client with 3503:
// replyError answers it with 116, like the refusals before it, and then
// disconnects the client.
var errLastRefusal = fmt.Errorf("redcast: %w, %s", protocol.ErrTooManyRequests, "the last in a row")

func (c *Client) isConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *Client) reply(id uint32, result any) {
	err := c.sendEncoded(func(b []byte) ([]byte, error) { return protocol.AppendReply(b, id, result) })
	if err != nil {
		c.replyError(id, protocol.ErrInternal)
	}
}

// replyError answers a command with err as ProtocolError shows it (an
// internal error is logged, since the client learns nothing of it).
func (c *Client) replyError(id uint32, err error) {
	if d, ok := errors.AsType[protocol.Disconnect](err); ok {
		c.Disconnect(d) // the backend's order: no reply
		return
	}
	perr, internal := ProtocolError(err)
	if internal {
		c.node.log.Error("command failed", "client", c.ID(), "id", id, "err", err)
	}
	_ = c.sendEncoded(func(b []byte) ([]byte, error) { return protocol.AppendError(b, id, perr), nil })
	if err == errLastRefusal {
		c.Disconnect(protocol.DisconnectTooManyRequests)
	}
}

// replyBufs holds the buffers replies are encoded in before they are
// copied to the transport's queue: shared by all clients, so that an idle
// client holds none.
var replyBufs = sync.Pool{New: func() any { return new([]byte) }}

// sendEncoded sends the reply encode appends to a pooled buffer (a copy of
// it: the queue keeps the message); nothing when encode fails. A reply is
// bounded by the queue's messages, not its bytes (see Outbox.PushReply).
func (c *Client) sendEncoded(encode func([]byte) ([]byte, error)) error {
	buf := replyBufs.Get().(*[]byte)
	out, err := encode((*buf)[:0])
	if err == nil && !c.out.PushReply(append([]byte(nil), out...)) {
		c.Disconnect(protocol.DisconnectSlowConsumer)
	}
	if cap(out) <= 64<<10 { // not one that grew for a reply with many publications
		*buf = out[:0]
		replyBufs.Put(buf)
	}
	return err
}

// subscribed reports whether the client is subscribed to ch.
func (c *Client) subscribed(ch string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[ch] != nil
}

func (c *Client) history(p protocol.HistoryParams) (*protocol.HistoryResult, error) {
	if err := c.node.policy.CanHistory(c.credentials(), p.Channel, c.subscribed(p.Channel)); err != nil {
		return nil, err
	}
	return c.node.history(c.ctx, p.Channel, p.Limit, p.Since)
}

// continues reports whether res (read with Since: since) continues since
// without a gap: same epoch, and the first publication follows since
// directly (or there is none because nothing was published after it).
func continues(since protocol.StreamPosition, res broker.HistoryResult) bool {
	if since.Epoch != res.Position.Epoch || since.Offset > res.Position.Offset {
		return false
	}
	if len(res.Publications) == 0 {
		return since.Offset == res.Position.Offset
	}
	return res.Publications[0].Offset == since.Offset+1
}

// values copies what ps points to into a slice of values, the shape replies carry.
func values[T any](ps []*T) []T {
	out := make([]T, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

func (c *Client) presence(p protocol.ChannelParams) (*protocol.PresenceResult, error) {
	if err := c.node.policy.CanPresence(c.credentials(), p.Channel, c.subscribed(p.Channel)); err != nil {
		return nil, err
	}
	infos, err := c.node.presence.Presence(c.ctx, p.Channel)
	if err != nil {
		return nil, err
	}
	return &protocol.PresenceResult{Clients: values(infos)}, nil
}
