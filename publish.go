package redcast

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// This file is the one home of publishing: every check a publication passes
// (from a client, a plain-mode client or the backend) and the path to the
// broker (Node.publish, or Node.publishMany for a batch), which counts it and
// flushes the deliveries the broker made from this goroutine. (The node's
// control messages to other nodes, control.go, are not publications.)

// Publish publishes data (a JSON value of at most MaxDataSize bytes) to a
// channel of a configured namespace, with the namespace's history options,
// and returns the position the broker assigned. Errors: 101 (data not
// JSON), 105, 106, 110, and broker errors.
func (n *Node) Publish(ctx context.Context, ch string, data []byte) (protocol.StreamPosition, error) {
	return n.PublishExcept(ctx, ch, data, "")
}

// PublishExcept is Publish with the connection of id except (on any node)
// as the publisher: a client of another protocol (Pusher's, which excludes
// a socket_id so) does not receive it, as it does not receive its own
// publications; a client of redcast's own protocol still does.
func (n *Node) PublishExcept(ctx context.Context, ch string, data []byte, except string) (protocol.StreamPosition, error) {
	return n.PublishWith(ctx, ch, data, PublishOptions{Except: except})
}

// PublishOptions are the options of PublishWith.
type PublishOptions struct {
	// Except is the publishing connection (see PublishExcept); empty for
	// none.
	Except string
	// IdempotencyKey, when set, makes the publish idempotent: a publish
	// with the same key to the same channel within
	// Config.IdempotencyWindow (on any node sharing the broker) returns
	// the first one's position and publishes nothing. At most
	// protocol.MaxIdempotencyKeyLength bytes of printable ASCII.
	IdempotencyKey string
}

// PublishWith is Publish with options. Errors: those of Publish, and 101
// for a bad idempotency key.
func (n *Node) PublishWith(ctx context.Context, ch string, data []byte, o PublishOptions) (protocol.StreamPosition, error) {
	ns, err := n.policy.Namespace(ch)
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	if err := n.checkData(data); err != nil {
		return protocol.StreamPosition{}, err
	}
	if err := protocol.ValidateIdempotencyKey(o.IdempotencyKey); err != nil {
		return protocol.StreamPosition{}, err
	}
	opts := broker.PublishOptions{HistorySize: ns.HistorySize, HistoryTTL: ns.HistoryTTL, Publisher: o.Except}
	n.idempotent(&opts, o.IdempotencyKey)
	return n.publish(ctx, sourceAPI, ch, data, opts)
}

// idempotent makes opts idempotent with key, when it is set.
func (n *Node) idempotent(opts *broker.PublishOptions, key string) {
	if key != "" {
		opts.IdempotencyKey, opts.IdempotencyTTL = key, n.cfg.IdempotencyWindow
	}
}

// Sources of publications, as counted in metrics.
const (
	sourceClient = "client"
	sourcePlain  = "plain"
	sourceAPI    = "api"
)

// publish publishes checked data through the broker, counting it.
func (n *Node) publish(ctx context.Context, source, ch string, data []byte, opts broker.PublishOptions) (protocol.StreamPosition, error) {
	start := time.Now()
	ctx, flush := withBatch(ctx)
	pos, err := n.broker.Publish(ctx, ch, data, opts)
	flush()
	n.countPublish(source, len(data), time.Since(start), err)
	return pos, err
}

// countPublish counts one broker publish of size data bytes that took
// elapsed and failed with err (nil: succeeded).
func (n *Node) countPublish(source string, size int, elapsed time.Duration, err error) {
	if err != nil {
		n.metrics.BrokerErrors.WithLabelValues("publish").Inc()
		return
	}
	n.metrics.BrokerPublishDuration.Observe(elapsed.Seconds())
	n.table.publications.Add(1)
	n.metrics.Publications.WithLabelValues(source).Inc()
	n.metrics.PublicationBytes.WithLabelValues(source).Add(float64(size))
}

// checkData validates publication data: present, within MaxDataSize, JSON.
func (n *Node) checkData(data []byte) error {
	switch {
	case len(data) == 0:
		return protocol.ErrBadRequest.WithMessage("publish needs data")
	case len(data) > n.cfg.MaxDataSize:
		return protocol.ErrDataTooLarge.WithMessage("data is %d bytes, the limit is %d", len(data), n.cfg.MaxDataSize)
	case !json.Valid(data):
		return protocol.ErrBadRequest.WithMessage("data is not valid JSON")
	}
	return nil
}

// Publish validates and publishes data to a channel, returning the position
// the broker assigned once it stored the publication.
func (c *Client) Publish(p protocol.PublishParams) (protocol.StreamPosition, error) {
	req, err := c.publishRequest(p, false)
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	return c.node.publish(c.ctx, sourceClient, req.Channel, req.Data, req.Options)
}

// publishRequest checks a publish of the client (permission, data) and
// returns it as the broker takes it: every publish of a client passes
// here, after its rate (allow).
// With a publish proxy for the channel's namespace, the backend decides
// instead of the namespace's policy, and may replace the data (proxy.go).
// authorized is a publish that the client's transport authorized by its
// own protocol's rules (PublishAuthorized): only a subscriber of the
// channel may make it, and neither the policy nor a proxy decides.
func (c *Client) publishRequest(p protocol.PublishParams, authorized bool) (broker.PublishRequest, error) {
	ns, err := c.node.policy.Namespace(p.Channel)
	if err != nil {
		return broker.PublishRequest{}, err
	}
	var url string
	if authorized {
		if !c.subscribed(p.Channel) {
			return broker.PublishRequest{}, protocol.ErrPermissionDenied.WithMessage("subscribe to channel %q to publish to it", p.Channel)
		}
	} else {
		url = c.node.publishProxy(ns, p.Channel)
		if url == "" {
			if err := c.node.policy.CanPublish(c.credentials(), p.Channel, c.subscribed(p.Channel)); err != nil {
				return broker.PublishRequest{}, err
			}
		}
	}
	if err := c.node.checkData(p.Data); err != nil {
		return broker.PublishRequest{}, err
	}
	if err := protocol.ValidateIdempotencyKey(p.IdempotencyKey); err != nil {
		return broker.PublishRequest{}, err
	}
	if url != "" {
		if p.Data, err = c.publishProxied(url, p.Channel, p.Data); err != nil {
			return broker.PublishRequest{}, err
		}
	}
	opts := c.publishOptions(ns)
	c.node.idempotent(&opts, p.IdempotencyKey)
	return broker.PublishRequest{Channel: p.Channel, Data: p.Data, Options: opts}, nil
}

// publishOptions returns how a publication of the client to a channel of
// namespace ns is kept. An anonymous client without a name is attached to
// nothing: its bare connection id would cost a push 47 bytes that no
// subscriber can use (see docs/protocol.md, Changes).
func (c *Client) publishOptions(ns auth.Namespace) broker.PublishOptions {
	opts := broker.PublishOptions{HistorySize: ns.HistorySize, HistoryTTL: ns.HistoryTTL, Publisher: c.ID()}
	if ns.AttachInfo && (c.info.User != "" || len(c.info.Info) > 0) {
		opts.From = c.info
	}
	return opts
}

// The publishes of one frame go to a broker that can batch (the Redis one)
// in one call: a client that pipelines publishes (many in flight, so that
// they share frames) pays about one broker round trip per frame instead of
// one per publish. Frames that arrived while a batch was under way form
// the next batch together (HandleFrame holds them until Flush), so that a backlog costs
// one round trip instead of one per frame, and does not grow. Each publish
// is checked on its own first, as handleCommand would; replies go out in
// command order, and any other command, or an error reply, first sends the
// publishes queued before it.

// maxPublishBatch is the most publishes of consecutive frames that wait
// for one broker call (see HandleFrame); one frame's publishes always go
// together.
const maxPublishBatch = 256

// queuedPublish is a checked publish waiting for its batch.
type queuedPublish struct {
	id    uint32
	start time.Time
	req   broker.PublishRequest
}

// queuePublish checks a publish command and queues it for the frame's
// batch, or answers it with its error (after the publishes before it).
func (c *Client) queuePublish(cmd protocol.Command) {
	start := time.Now()
	req, err := c.checkPublish(cmd)
	if err != nil {
		c.flushPublishes()
		c.replyError(cmd.ID, err)
		c.node.metrics.Command(cmd.Method).Observe(time.Since(start).Seconds())
		return
	}
	c.pubs = append(c.pubs, queuedPublish{id: cmd.ID, start: start, req: req})
}

// checkPublish runs every check of a publish command: the connection's
// state, its publish rate, the params, permission and data.
func (c *Client) checkPublish(cmd protocol.Command) (broker.PublishRequest, error) {
	switch {
	case !c.isConnected():
		return broker.PublishRequest{}, protocol.ErrNotConnected
	case c.tokenExpired():
		return broker.PublishRequest{}, protocol.ErrTokenExpired.WithMessage("token expired: send refresh with a fresh token")
	}
	if err := c.allow(c.publishLimit()); err != nil {
		return broker.PublishRequest{}, err
	}
	var p protocol.PublishParams
	if err := protocol.DecodeParams(cmd, &p); err != nil {
		return broker.PublishRequest{}, err
	}
	return c.publishRequest(p, false)
}

// flushPublishes publishes the queued publishes in one broker call and
// answers each, in order.
func (c *Client) flushPublishes() {
	if len(c.pubs) == 0 {
		return
	}
	pubs := c.pubs
	c.pubs = c.pubs[:0]
	reqs := make([]broker.PublishRequest, len(pubs))
	for i, p := range pubs {
		reqs[i] = p.req
	}
	results := c.node.publishMany(c.ctx, sourceClient, reqs)
	for i, p := range pubs {
		if err := results[i].Err; err != nil {
			c.replyError(p.id, err)
		} else {
			pos := results[i].Position
			c.reply(p.id, &pos)
		}
		c.node.metrics.Command(protocol.MethodPublish).Observe(time.Since(p.start).Seconds())
	}
	clear(pubs) // drop the data references
}

// publishMany publishes checked requests through the batching broker,
// counting them as publish does.
func (n *Node) publishMany(ctx context.Context, source string, reqs []broker.PublishRequest) []broker.PublishResult {
	start := time.Now()
	ctx, flush := withBatch(ctx)
	results := n.batch.PublishMany(ctx, reqs)
	flush()
	elapsed := time.Since(start)
	for i, r := range results {
		n.countPublish(source, len(reqs[i].Data), elapsed, r.Err)
	}
	return results
}
