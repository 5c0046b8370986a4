package pusher

import "github.com/redcast/redcast/protocol"

// Pusher's error codes: 4000-4099 close the connection for good (clients do
// not reconnect), 4100-4199 ask clients to reconnect after a backoff,
// 4200-4299 to reconnect at once; 4300-4399 are errors that do not close.
const (
	codeUnknownApp          = 4001
	codeOverQuota           = 4004
	codeBadVersion          = 4006
	codeUnsupportedProtocol = 4007
	codeNoProtocol          = 4008
	codeUnauthorized        = 4009
	codeOverCapacity        = 4100
	codeReconnect           = 4200
	codePongNotReceived     = 4201
	codeRateLimited         = 4301
)

// closeCode returns the Pusher close code and reason of a disconnect: a
// Pusher code as it is, a redcast code as the Pusher code that makes
// clients do what redcast's would (reconnect or not, at once or later).
func closeCode(d protocol.Disconnect) (uint16, string) {
	if d.Code >= 4000 && d.Code < 4400 {
		return d.Code, d.Reason
	}
	switch d.Code {
	case protocol.DisconnectNoPong.Code:
		return codePongNotReceived, "Pong reply not received"
	case protocol.DisconnectConnectionLimit.Code, protocol.DisconnectSlowConsumer.Code:
		return codeOverCapacity, d.Reason
	}
	if d.Reconnect() {
		return codeReconnect, d.Reason
	}
	return codeUnauthorized, d.Reason
}
