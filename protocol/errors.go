package protocol

import (
	"fmt"
	"time"
)

// Error is a protocol error carried in a reply. Codes are stable and listed
// in docs/protocol.md; Message is for humans and may change.
type Error struct {
	Code    uint32 `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("redcast error %d: %s", e.Code, e.Message) }

// Is makes errors.Is match errors by code, so a wrapped copy with a more
// specific message still matches the sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// WithMessage returns a copy of e with a more specific message.
func (e *Error) WithMessage(format string, args ...any) *Error {
	return &Error{Code: e.Code, Message: fmt.Sprintf(format, args...)}
}

// Error codes, in the range 100-199. Each is documented in docs/protocol.md.
var (
	ErrInternal          = &Error{100, "internal error"}
	ErrBadRequest        = &Error{101, "bad request"}
	ErrUnknownMethod     = &Error{102, "unknown method"}
	ErrNotConnected      = &Error{103, "connect first"}
	ErrAlreadyConnected  = &Error{104, "already connected"}
	ErrInvalidChannel    = &Error{105, "invalid channel name"}
	ErrUnknownNamespace  = &Error{106, "unknown channel namespace"}
	ErrPermissionDenied  = &Error{107, "permission denied"}
	ErrAlreadySubscribed = &Error{108, "already subscribed"}
	ErrLimitExceeded     = &Error{109, "limit exceeded"}
	ErrDataTooLarge      = &Error{110, "data too large"}
	ErrNotAvailable      = &Error{111, "not available"}
	ErrBrokerUnavailable = &Error{112, "broker unavailable"}
	ErrPositionExpired   = &Error{113, "stream position is no longer in history"}
	ErrUnauthorized      = &Error{114, "unauthorized"}
	ErrTokenExpired      = &Error{115, "token expired"}
	ErrTooManyRequests   = &Error{116, "too many requests"}
	// ErrBackendUnavailable (117) is in rpc.go.
)

// Disconnect tells a client why the server closes its connection. It is sent
// as a disconnect push and as the WebSocket close code and reason. Codes
// 3000-3499 advise the client to reconnect (and recover); codes 3500-3999
// advise it not to, because reconnecting would fail the same way.
type Disconnect struct {
	Code   uint16
	Reason string
	// Delay, when not zero, is how long the client should wait before it
	// reconnects (sent in the push as "delay", in milliseconds). A node
	// that shuts down gives each client a random delay, so that its
	// clients do not all arrive at the other nodes at once.
	Delay time.Duration
}

// Reconnect reports whether the client should reconnect: codes below 3500,
// and 4000-4499 of a backend's disconnect (see docs/backend.md).
func (d Disconnect) Reconnect() bool { return d.Code < 3500 || (d.Code >= 4000 && d.Code < 4500) }

func (d Disconnect) Error() string { return fmt.Sprintf("redcast disconnect %d: %s", d.Code, d.Reason) }

// Push returns d as a disconnect push.
func (d Disconnect) Push() *Push {
	return &Push{Type: PushDisconnect, Code: d.Code, Reason: d.Reason, Reconnect: d.Reconnect(), Delay: d.Delay.Milliseconds()}
}

// AppendPush appends d encoded as a disconnect push to dst. Unlike
// AppendPush(d.Push()), it always writes "reconnect", false included.
func (d Disconnect) AppendPush(dst []byte) []byte {
	out, _ := appendJSON(dst, struct {
		Type      string `json:"push"`
		Code      uint16 `json:"code"`
		Reason    string `json:"reason"`
		Reconnect bool   `json:"reconnect"`
		Delay     int64  `json:"delay,omitempty"`
	}{PushDisconnect, d.Code, d.Reason, d.Reconnect(), d.Delay.Milliseconds()}) // plain fields: cannot fail
	return out
}

// Disconnect codes. Each is documented in docs/protocol.md.
var (
	DisconnectShutdown          = Disconnect{Code: 3001, Reason: "server shutting down"}
	DisconnectSlowConsumer      = Disconnect{Code: 3002, Reason: "slow consumer"}
	DisconnectNoPong            = Disconnect{Code: 3003, Reason: "no activity within ping timeout"}
	DisconnectInsufficientState = Disconnect{Code: 3004, Reason: "insufficient state: reconnect and recover"}
	DisconnectConnectionLimit   = Disconnect{Code: 3005, Reason: "connection limit reached"}
	DisconnectTokenExpired      = Disconnect{Code: 3006, Reason: "token expired"}
	DisconnectForcedReconnect   = Disconnect{Code: 3007, Reason: "disconnected by the server: reconnect"}
	DisconnectBadFrame          = Disconnect{Code: 3500, Reason: "bad frame"}
	DisconnectFrameTooLarge     = Disconnect{Code: 3501, Reason: "frame too large"}
	DisconnectNoConnect         = Disconnect{Code: 3502, Reason: "no connect in time"}
	DisconnectTooManyRequests   = Disconnect{Code: 3503, Reason: "too many requests"}
	DisconnectForced            = Disconnect{Code: 3504, Reason: "disconnected by the server"}
)

// Close codes of plain mode, which has no disconnect push: the standard
// WebSocket codes for what the server refuses. Other disconnects use the codes
// above.
var (
	DisconnectPlainBinary   = Disconnect{Code: 1003, Reason: "binary frames are not supported"}
	DisconnectPlainTooLarge = Disconnect{Code: 1009, Reason: "message too large"}
	DisconnectPlainInternal = Disconnect{Code: 1011, Reason: "publish failed"}
)
