// Package pusher speaks the Pusher Channels protocol (version 7) on a
// redcast node, so that pusher-js, Laravel Echo and Pusher's other client
// libraries work unchanged against redcast.
//
// It is a second protocol on the same engine, not a second engine: a
// Pusher connection is a redcast.Client like any other, upgraded, read and
// pinged by package transport/websocket (as a websocket.Dialect) and
// written by its own outbox. Its channels are redcast channels in the
// app's namespace ("pusher:my-channel" for Pusher's "my-channel"), so
// events reach Pusher clients and redcast clients alike, through the same
// hub and brokers, encoded once per broadcast in the Pusher format
// (hub.RegisterFormat). docs/pusher.md gives the mapping and what is
// supported.
package pusher
