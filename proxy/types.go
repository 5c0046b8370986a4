package proxy

import "encoding/json"

// The requests, as Centrifugo's HTTP proxy sends them. Data and Meta are
// JSON values sent as they are (redcast speaks JSON only: "encoding" is
// always "json" and b64data is never sent).

// Base is what every request but connect's starts with: the connection.
type Base struct {
	// Client is the connection's id.
	Client string `json:"client,omitempty"`
	// Transport is "websocket" or "sse".
	Transport string `json:"transport,omitempty"`
	// Protocol is the wire format: "json".
	Protocol string `json:"protocol,omitempty"`
	// Encoding is how data is sent: "json".
	Encoding string `json:"encoding,omitempty"`
}

// ConnectRequest asks who a client connecting without a token is.
type ConnectRequest struct {
	Base
	// Name is the name the client gave in its connect command.
	Name string `json:"name,omitempty"`
	// Version is the client's version, when it gives one.
	Version string `json:"version,omitempty"`
	// Data is the data of the connect command, when it has some.
	Data json.RawMessage `json:"data,omitempty"`
	// Channels are the channels the client asks to subscribe to at once
	// (the channels of an event stream).
	Channels []string `json:"channels,omitempty"`
}

// RefreshRequest asks whether a connection lives on past its expiry.
type RefreshRequest struct {
	Base
	User string          `json:"user"`
	Meta json.RawMessage `json:"meta,omitempty"`
}

// SubscribeRequest asks whether a client may subscribe to Channel.
type SubscribeRequest struct {
	Base
	User    string          `json:"user"`
	Channel string          `json:"channel"`
	Token   string          `json:"token,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Meta    json.RawMessage `json:"meta,omitempty"`
}

// PublishRequest asks whether a client may publish Data to Channel, and
// what to publish.
type PublishRequest struct {
	Base
	User    string          `json:"user"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data,omitempty"`
	Meta    json.RawMessage `json:"meta,omitempty"`
}

// RPCRequest asks the backend to answer a client's rpc command.
type RPCRequest struct {
	Base
	User   string          `json:"user"`
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
	Meta   json.RawMessage `json:"meta,omitempty"`
}

// The results, as decoded from {"result": ...}. Decode turns b64info and
// b64data into Info and Data, which must then be JSON; fields of
// Centrifugo's results that redcast does not use are ignored.

// ConnectResult names the client: its user ("" for an anonymous client),
// when its connection expires (Unix seconds, 0: never), its info (a JSON
// object others see), channels to subscribe it to on the server side, data
// for the connect reply and meta sent back with the connection's later
// requests.
type ConnectResult struct {
	User     string          `json:"user"`
	ExpireAt int64           `json:"expire_at"`
	Info     json.RawMessage `json:"info"`
	B64Info  string          `json:"b64info"`
	Data     json.RawMessage `json:"data"`
	B64Data  string          `json:"b64data"`
	Channels []string        `json:"channels"`
	Meta     json.RawMessage `json:"meta"`
}

// RefreshResult extends a connection to ExpireAt, or ends it (Expired).
type RefreshResult struct {
	Expired  bool            `json:"expired"`
	ExpireAt int64           `json:"expire_at"`
	Info     json.RawMessage `json:"info"`
	B64Info  string          `json:"b64info"`
	Meta     json.RawMessage `json:"meta"`
}

// SubscribeResult allows a subscribe. Its fields are accepted for
// compatibility and not used.
type SubscribeResult struct {
	ExpireAt int64           `json:"expire_at"`
	Info     json.RawMessage `json:"info"`
	B64Info  string          `json:"b64info"`
	Data     json.RawMessage `json:"data"`
	B64Data  string          `json:"b64data"`
}

// PublishResult allows a publish; Data, when set, replaces the data
// published, and SkipHistory keeps the publication out of history.
type PublishResult struct {
	Data        json.RawMessage `json:"data"`
	B64Data     string          `json:"b64data"`
	SkipHistory bool            `json:"skip_history"`
}

// RPCResult is the answer to an rpc command: Data for the client.
type RPCResult struct {
	Data    json.RawMessage `json:"data"`
	B64Data string          `json:"b64data"`
}
