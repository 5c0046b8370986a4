// Package redcast is the engine of the redcast messaging server: a Node ties
// a broker (which carries publications between nodes and keeps history and
// presence) to the local hub (which fans them out to this node's
// connections), and a Client is one connection's protocol session.
//
// Transports (package transport/websocket) read frames from a socket and hand
// them to a Client; the Client writes back through the Transport interface,
// which never blocks. The path of one publication:
//
//	Client.publish -> Broker.Publish -> Node.HandlePublication -> Hub.Broadcast
//	  -> subscription.Deliver -> Transport.Send (bounded queue) -> writer goroutine
package redcast
