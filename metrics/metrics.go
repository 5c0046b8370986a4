// Package metrics holds the Prometheus metrics of a redcast node: what the
// node counts (connections, subscriptions, publications, pushes, command
// and broker latency, recoveries, disconnects), registered on a registry
// the server exposes at /metrics. docs/operations.md lists every metric.
//
// The hot path (fan-out) counts once per broadcast, never once per
// delivered message, so that metrics cost nothing measurable per delivery.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a node's metrics. Build them with New; a nil *Metrics is not
// valid.
type Metrics struct {
	// Connections is the number of registered connections.
	Connections prometheus.Gauge
	// ConnectionsOpened counts connections registered.
	ConnectionsOpened prometheus.Counter
	// ConnectionsClosed counts connections closed, by the disconnect code
	// the server closed them with ("client" when the client or the
	// network ended them).
	ConnectionsClosed *prometheus.CounterVec
	// Subscriptions is the number of client subscriptions on the node.
	Subscriptions prometheus.Gauge
	// Channels is the number of channels with a local subscriber.
	Channels prometheus.Gauge
	// Publications counts publications accepted from clients and the API,
	// by source ("client", "plain", "api"), and their data bytes.
	Publications     *prometheus.CounterVec
	PublicationBytes *prometheus.CounterVec
	// Broadcasts counts publications and presence events the broker
	// delivered to this node; Pushes counts the messages they were fanned
	// out as (one per local subscriber) and PushBytes their size.
	Broadcasts prometheus.Counter
	Pushes     prometheus.Counter
	PushBytes  prometheus.Counter
	// SlowConsumers counts connections closed because their send queue
	// overflowed.
	SlowConsumers prometheus.Counter
	// CommandDuration observes how long commands take, by method.
	CommandDuration *prometheus.HistogramVec
	// BrokerPublishDuration observes broker publish latency.
	BrokerPublishDuration prometheus.Histogram
	// BrokerErrors counts failed broker calls, by operation.
	BrokerErrors *prometheus.CounterVec
	// Recoveries counts subscribes that asked to recover, by result
	// ("recovered", "failed").
	Recoveries *prometheus.CounterVec
	// ProxyCalls counts calls to the application's backend, by kind
	// (ProxyKinds) and result (ProxyResults); ProxyDuration observes how
	// long they take, by kind.
	ProxyCalls    *prometheus.CounterVec
	ProxyDuration *prometheus.HistogramVec
	// WireBytes counts the bytes the transports wrote to their
	// connections (frames or events, headers and all: what goes on the
	// wire, before TLS), by transport ("websocket", "sse") and compression
	// ("deflate": the connection negotiated permessage-deflate, "none").
	// It is counted once per write, not per message.
	WireBytes *prometheus.CounterVec

	closedByCode map[uint16]prometheus.Counter
	closedOther  prometheus.Counter
	closedClient prometheus.Counter
	commands     map[string]prometheus.Observer
}

// Namespace prefixes every metric name.
const Namespace = "redcast"

// Methods are the command methods observed by CommandDuration; others are
// observed as "unknown" so that clients cannot grow the label set.
var Methods = []string{"connect", "refresh", "subscribe", "unsubscribe", "publish", "history", "presence", "ping", "rpc"}

// ProxyKinds and ProxyResults are the label values of ProxyCalls: ok, the
// backend's error or disconnect, the reasons a call got no reply (see
// package proxy), and cancelled (the client went away during the call).
var (
	ProxyKinds   = []string{"connect", "refresh", "subscribe", "publish", "rpc"}
	ProxyResults = []string{"ok", "error", "disconnect", "timeout", "unreachable", "status", "bad_reply", "overloaded", "cancelled"}
)

// DisconnectCodes are the codes ConnectionsClosed has a label value for;
// others count as "other".
var DisconnectCodes = []uint16{1003, 1009, 1011, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3500, 3501, 3502, 3503, 3504}

// New returns metrics registered on reg (nil: not registered anywhere, for
// embedders that do not export them).
func New(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		Connections:       gauge("connections", "Connections currently registered."),
		ConnectionsOpened: counter("connections_opened_total", "Connections registered."),
		ConnectionsClosed: counterVec("connections_closed_total", "Connections closed, by the disconnect code the server sent (client: closed by the client or the network; other: an unlisted code).", "code"),
		Subscriptions:     gauge("subscriptions", "Client subscriptions on this node."),
		Channels:          gauge("channels", "Channels with at least one subscriber on this node."),
		Publications:      counterVec("publications_total", "Publications accepted, by source (client, plain, api).", "source"),
		PublicationBytes:  counterVec("publication_bytes_total", "Data bytes of publications accepted, by source.", "source"),
		Broadcasts:        counter("broadcasts_total", "Publications and presence events the broker delivered to this node."),
		Pushes:            counter("pushes_total", "Messages queued to connections by broadcasts (one per local subscriber that is sent it: not a sender's own publication in plain mode)."),
		PushBytes:         counter("push_bytes_total", "Bytes of the messages counted by redcast_pushes_total."),
		SlowConsumers:     counter("slow_consumers_total", "Connections disconnected because their send queue overflowed (code 3002)."),
		CommandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "command_duration_seconds", Help: "How long commands take, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}, []string{"method"}),
		BrokerPublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "broker_publish_duration_seconds", Help: "Latency of broker publishes.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 9),
		}),
		BrokerErrors: counterVec("broker_errors_total", "Failed broker calls, by operation.", "op"),
		Recoveries:   counterVec("recoveries_total", "Subscribes that asked to recover, by result (recovered, failed).", "result"),
		ProxyCalls:   counterVec("proxy_calls_total", "Calls to the application's backend, by kind (connect, refresh, subscribe, publish, rpc) and result (ok, error, disconnect, timeout, unreachable, status, bad_reply, overloaded, cancelled).", "kind", "result"),
		ProxyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "proxy_call_duration_seconds", Help: "How long calls to the application's backend take, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 7),
		}, []string{"kind"}),
		WireBytes:    counterVec("wire_bytes_total", "Bytes written to connections, frames and all, by transport (websocket, sse) and compression (deflate, none).", "transport", "compression"),
		closedByCode: make(map[uint16]prometheus.Counter, len(DisconnectCodes)),
		commands:     make(map[string]prometheus.Observer, len(Methods)+1),
	}
	reg.MustRegister(m.CommandDuration, m.BrokerPublishDuration, m.ProxyDuration)
	// Create every label value up front, so that series exist (at 0) before
	// the first event and the hot path does no label lookups.
	for _, code := range DisconnectCodes {
		m.closedByCode[code] = m.ConnectionsClosed.WithLabelValues(strconv.Itoa(int(code)))
	}
	m.closedOther = m.ConnectionsClosed.WithLabelValues("other")
	m.closedClient = m.ConnectionsClosed.WithLabelValues("client")
	for _, meth := range append(Methods, "unknown") {
		m.commands[meth] = m.CommandDuration.WithLabelValues(meth)
	}
	for _, src := range []string{"client", "plain", "api"} {
		m.Publications.WithLabelValues(src)
		m.PublicationBytes.WithLabelValues(src)
	}
	for _, r := range []string{"recovered", "failed"} {
		m.Recoveries.WithLabelValues(r)
	}
	for _, kind := range ProxyKinds {
		for _, r := range ProxyResults {
			m.ProxyCalls.WithLabelValues(kind, r)
		}
	}
	for _, tc := range [][2]string{{"websocket", "none"}, {"websocket", "deflate"}, {"sse", "none"}} {
		m.WireBytes.WithLabelValues(tc[0], tc[1])
	}
	for _, op := range []string{"publish", "subscribe", "history", "presence"} {
		m.BrokerErrors.WithLabelValues(op)
	}
	return m
}

// Closed counts a connection closed with a disconnect code (0: by the
// client or the network).
func (m *Metrics) Closed(code uint16) {
	switch c, ok := m.closedByCode[code]; {
	case code == 0:
		m.closedClient.Inc()
	case ok:
		c.Inc()
	default:
		m.closedOther.Inc()
	}
}

// Command returns the observer of a command method's duration.
func (m *Metrics) Command(method string) prometheus.Observer {
	if o, ok := m.commands[method]; ok {
		return o
	}
	return m.commands["unknown"]
}

// Wire returns the WireBytes counter of a transport's connections,
// compressed or not.
func (m *Metrics) Wire(transport string, compressed bool) prometheus.Counter {
	c := "none"
	if compressed {
		c = "deflate"
	}
	return m.WireBytes.WithLabelValues(transport, c)
}
