// Package proxy asks the application's backend over HTTP what redcast
// should do: who a connecting client is (connect), whether its connection
// lives on (refresh), whether it may subscribe (subscribe) or publish, and
// with what data (publish), and what to answer its rpc commands (rpc).
//
// The request and reply bodies are those of Centrifugo's HTTP proxy, so a
// backend written for Centrifugo works unchanged: each call is a POST of a
// JSON request ({"client", "transport", "protocol", "encoding", "user",
// "channel", "data", "meta", ...}) answered with HTTP 200 and one of
// {"result": {...}}, {"error": {"code", "message"}} or {"disconnect":
// {"code", "reason"}}. docs/backend.md describes every field.
//
// A Client bounds its calls: each one, waiting for a free slot included,
// ends within Config.Timeout, and at most Config.MaxInFlight run at once.
// A call that cannot be answered (the backend is down, slow, answers a
// status other than 200 or a body that is not a reply) fails with an error
// that wraps ErrUnavailable; Reason names which for metrics. A backend's
// own refusal is an *Error or a *Disconnect. A Client is safe for
// concurrent use.
package proxy
