// Package protocol holds redcast's wire format: the JSON commands a client
// sends, the replies and pushes the server sends back, the error and
// disconnect codes, and the rules for channel names.
//
// A WebSocket text frame carries one or more JSON objects, one per line
// (separated by '\n'). Clients send commands; the server answers each command
// with a reply carrying the same id, and sends pushes (publications, join,
// leave, disconnect) that carry no id. Several replies and pushes may share
// one frame so that the server can coalesce writes.
//
// The format is documented for users in docs/protocol.md; the two must agree.
package protocol
