// Package test holds redcast's black-box protocol tests: each test starts a
// server on a random local port and talks to it over real WebSocket
// connections, with package client for well-behaved clients and raw frames
// (see rawConn) for everything a well-behaved client would not send. The
// contract they check is docs/protocol.md.
package test
