package protocol

// Disconnect codes of revocation (see docs/protocol.md): a connection
// whose token the backend revoked, or whose user it blocked, is closed
// with these, on every node. Reconnecting with the same token would be
// refused (error 114), so they advise against it.
var (
	DisconnectTokenRevoked = Disconnect{Code: 3510, Reason: "token revoked"}
	DisconnectUserBlocked  = Disconnect{Code: 3511, Reason: "user blocked"}
)
