package protocol

import "encoding/json"

// Methods a client may call. See docs/protocol.md for each one's params and result.
const (
	MethodConnect     = "connect"
	MethodSubscribe   = "subscribe"
	MethodUnsubscribe = "unsubscribe"
	MethodPublish     = "publish"
	MethodHistory     = "history"
	MethodPresence    = "presence"
	MethodPing        = "ping"
	MethodRefresh     = "refresh"
	// MethodRPC is in rpc.go.
)

// Push types the server sends without a command.
const (
	PushPublication = "publication"
	PushJoin        = "join"
	PushLeave       = "leave"
	PushDisconnect  = "disconnect"
	PushRefresh     = "refresh"
	PushUnsubscribe = "unsubscribe"
)

// Command is one client request. ID is chosen by the client, must be at least
// 1, and is echoed in the reply so that replies can be matched to commands.
type Command struct {
	ID     uint32          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Reply answers the command with the same ID. Exactly one of Result and Error
// is set. ID is 0 only when the command was too malformed to read its id.
type Reply struct {
	ID     uint32          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Push is a message the server sends on its own. Type says which of the other
// fields are set: publication (Channel, Pub), join and leave (Channel,
// Client), unsubscribe (Channel, Reason), subscribe (Channel, Sub: a
// server-side subscription), disconnect (Code, Reason, Reconnect, and Delay
// in milliseconds when the server advises one).
type Push struct {
	Type      string       `json:"push"`
	Channel   string       `json:"channel,omitempty"`
	Pub       *Publication `json:"pub,omitempty"`
	Client    *ClientInfo  `json:"client,omitempty"`
	Code      uint16       `json:"code,omitempty"`
	Reason    string       `json:"reason,omitempty"`
	Reconnect bool         `json:"reconnect,omitempty"`
	Delay     int64        `json:"delay,omitempty"`
	// Sub is the subscription of a subscribe push (server-side).
	Sub *SubscribeResult `json:"sub,omitempty"`
}

// ServerMessage is any one line the server sends: a Reply when Push.Type is
// empty, a Push otherwise. Clients decode into it.
type ServerMessage struct {
	Reply
	Push
}

// IsPush reports whether m is a push rather than a reply.
func (m *ServerMessage) IsPush() bool { return m.Push.Type != "" }

// Publication is one message in a channel, as delivered live and as kept in
// history. Offset is assigned by the broker and grows by one per publication
// within a channel's epoch. Time is the broker's clock in Unix milliseconds.
type Publication struct {
	Offset uint64          `json:"offset"`
	Time   int64           `json:"time,omitempty"`
	Data   json.RawMessage `json:"data"`
	From   *ClientInfo     `json:"from,omitempty"`
	// Delta says that Data is not the publication's data but a JSON
	// string holding the Fossil delta from the data of the publication
	// before it (Offset-1) to this one's (see docs/protocol.md). Only
	// live publications to a subscriber that asked for deltas carry one;
	// history never does.
	Delta bool `json:"delta,omitempty"`
	// Publisher is the id of the connection that published it, kept by the
	// brokers but never sent to clients: it tells a connection its own
	// publications (plain mode's echo) when From is not attached. Empty for
	// publications of the server API.
	Publisher string `json:"-"`
}

// ClientInfo describes a connection to other clients: in presence, in
// join/leave pushes and as the publisher of a publication. User is empty for
// anonymous clients. Info is a JSON object (for anonymous clients
// {"name": ...} from the connect command).
type ClientInfo struct {
	Client string          `json:"client"`
	User   string          `json:"user,omitempty"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// StreamPosition names a place in a channel's stream: the offset of the last
// publication and the epoch of the stream's current lifetime. Positions from
// different epochs cannot be compared.
type StreamPosition struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// ConnectParams are the params of connect.
type ConnectParams struct {
	// Token is a connection token (a JWT); without one the client is
	// anonymous.
	Token string `json:"token,omitempty"`
	// Name is a display name for anonymous clients (at most MaxNameLength bytes).
	Name string `json:"name,omitempty"`
	// Data is any JSON value for the connect proxy (see docs/backend.md).
	Data json.RawMessage `json:"data,omitempty"`
}

// ConnectResult is the result of connect.
type ConnectResult struct {
	Client  string `json:"client"`
	Version string `json:"version"`
	// PingMS is the interval in milliseconds at which the server sends
	// WebSocket pings; a client that hears nothing for longer than PingMS
	// plus a margin may consider the connection dead.
	PingMS int64 `json:"ping_ms"`
	// Ping is PingMS in seconds, rounded up (so never 0 while the server
	// pings), for the clients written before ping_ms.
	Ping int `json:"ping"`
	// User is the authenticated user; empty for anonymous clients.
	User string `json:"user,omitempty"`
	// Expiry says when the connection token expires (authenticated clients
	// whose token has an exp).
	Expiry
	// Data is the connect proxy's data for the client, when it gave some.
	Data json.RawMessage `json:"data,omitempty"`
}

// Expiry tells a client when to refresh its token: Expires is the Unix time
// in seconds, TTL the seconds left. Both are 0 for tokens without expiry.
type Expiry struct {
	Expires int64 `json:"expires,omitempty"`
	TTL     int64 `json:"ttl,omitempty"`
}

// RefreshParams are the params of refresh: a fresh connection token of the
// same user.
type RefreshParams struct {
	Token string `json:"token"`
}

// RefreshResult is the result of refresh.
type RefreshResult = Expiry

// SubscribeParams are the params of subscribe.
type SubscribeParams struct {
	Channel string `json:"channel"`
	// Since asks to recover: the reply carries every publication after
	// this position, or says Recovered false when history cannot cover it.
	Since *StreamPosition `json:"since,omitempty"`
	// History asks for the last History publications when not recovering,
	// or when recovery is not possible.
	History int `json:"history,omitempty"`
	// Token is a subscription token, needed for channels of namespaces
	// whose subscribe policy is "token".
	Token string `json:"token,omitempty"`
	// JoinLeave asks for the join and leave pushes of the channel, which
	// the server sends when the channel's namespace has join/leave on
	// (SubscribeResult.JoinLeave says whether it does).
	JoinLeave bool `json:"join_leave,omitempty"`
	// Delta asks for delta publications: DeltaFossil, or empty for none.
	// The server sends them where the namespace allows
	// (SubscribeResult.Delta says whether it does).
	Delta string `json:"delta,omitempty"`
}

// DeltaFossil is the delta format of SubscribeParams.Delta: Fossil's delta
// encoding (https://fossil-scm.org/home/doc/tip/www/delta_format.wiki).
const DeltaFossil = "fossil"

// SubscribeResult is the result of subscribe. Publications (oldest first)
// are those recovered or asked for with History; live publications that
// follow never repeat or skip an offset after them.
type SubscribeResult struct {
	Offset       uint64        `json:"offset"`
	Epoch        string        `json:"epoch"`
	Recoverable  bool          `json:"recoverable"`
	Recovered    bool          `json:"recovered"`
	Publications []Publication `json:"publications,omitempty"`
	// JoinLeave says that join and leave pushes follow: the subscribe
	// asked for them and the namespace allows them.
	JoinLeave bool `json:"join_leave,omitempty"`
	// Delta says that live publications may carry deltas: the subscribe
	// asked for them and the namespace allows them.
	Delta bool `json:"delta,omitempty"`
}

// ChannelParams are the params of unsubscribe and presence.
type ChannelParams struct {
	Channel string `json:"channel"`
}

// PublishParams are the params of publish. Data is any JSON value.
type PublishParams struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	// IdempotencyKey, when set, makes the publish idempotent (see
	// ValidateIdempotencyKey and docs/protocol.md).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// PublishResult acknowledges a publication once the broker stored it.
type PublishResult = StreamPosition

// HistoryParams are the params of history: the last Limit publications, or
// with Since the publications after that position (at most Limit of them).
type HistoryParams struct {
	Channel string          `json:"channel"`
	Limit   int             `json:"limit,omitempty"`
	Since   *StreamPosition `json:"since,omitempty"`
}

// HistoryResult is the result of history, oldest first, with the position of
// the channel's latest publication.
type HistoryResult struct {
	Publications []Publication `json:"publications"`
	Offset       uint64        `json:"offset"`
	Epoch        string        `json:"epoch"`
}

// PresenceResult is the result of presence.
type PresenceResult struct {
	Clients []ClientInfo `json:"clients"`
}
