package protocol

import "encoding/json"

// What the proxies to the application's backend add to the protocol (see
// docs/backend.md): the rpc command, the subscribe push of server-side
// subscriptions, and the error of a backend that did not answer.

// MethodRPC is the rpc command: a call the backend answers.
const MethodRPC = "rpc"

// PushSubscribe announces a server-side subscription (Push.Channel and
// Push.Sub), which the connect proxy gave the client: it comes after the
// connect reply and before the channel's publications.
const PushSubscribe = "subscribe"

// MaxRPCMethodLength is the longest rpc method accepted, in bytes.
const MaxRPCMethodLength = 255

// RPCParams are the params of rpc: a method name for the backend and any
// JSON data (both optional).
type RPCParams struct {
	Method string          `json:"method,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// RPCResult is the result of rpc: the backend's data, when it gave some.
type RPCResult struct {
	Data json.RawMessage `json:"data,omitempty"`
}

// ErrBackendUnavailable answers a command that needed the application's
// backend when the backend did not answer in time, could not be reached,
// answered an HTTP status other than 200 or a body that is not a reply, or
// too many calls to it were under way. The message says which. The
// command may be retried.
var ErrBackendUnavailable = &Error{117, "backend unavailable"}
