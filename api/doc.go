// Package api is redcast's HTTP server API for application backends:
// publish (idempotently with a key) and broadcast, history, presence, the
// active channels, disconnecting or unsubscribing a user on every node,
// and revoking tokens and blocking users (revoke.go).
//
// Every endpoint is a POST of a JSON object to /api/NAME, authenticated
// with "Authorization: apikey KEY". A request without the right key gets
// 401 and nothing else is done. The answer is {"result": ...} with status
// 200, or {"error": {"code", "message"}} with the codes of docs/protocol.md
// and status 400 (the request is wrong), 401, 413 (body too large), 500 or
// 503 (the broker is unreachable). docs/api.md documents each endpoint.
package api
