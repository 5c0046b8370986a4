package protocol

import "fmt"

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
)

// Disconnect tells a client why the server closes its connection. It is sent
// as a disconnect push and as the WebSocket close code and reason. Codes
// 3000-3499 advise the client to reconnect (and recover); codes 3500-3999
// advise it not to, because reconnecting would fail the same way.
type Disconnect struct {
	Code   uint16
	Reason string
}

// Reconnect reports whether the client should reconnect.
func (d Disconnect) Reconnect() bool { return d.Code < 3500 }

func (d Disconnect) Error() string { return fmt.Sprintf("redcast disconnect %d: %s", d.Code, d.Reason) }

// Push returns d as a disconnect push.
func (d Disconnect) Push() *Push {
	return &Push{Type: PushDisconnect, Code: d.Code, Reason: d.Reason, Reconnect: d.Reconnect()}
}

// AppendPush appends d encoded as a disconnect push to dst. Unlike
// AppendPush(d.Push()), it always writes "reconnect", false included.
func (d Disconnect) AppendPush(dst []byte) []byte {
	out, _ := appendJSON(dst, struct {
		Type      string `json:"push"`
		Code      uint16 `json:"code"`
		Reason    string `json:"reason"`
		Reconnect bool   `json:"reconnect"`
	}{PushDisconnect, d.Code, d.Reason, d.Reconnect()}) // plain fields: cannot fail
	return out
}

// Disconnect codes. Each is documented in docs/protocol.md.
var (
	DisconnectShutdown          = Disconnect{3001, "server shutting down"}
	DisconnectSlowConsumer      = Disconnect{3002, "slow consumer"}
	DisconnectNoPong            = Disconnect{3003, "no activity within ping timeout"}
	DisconnectInsufficientState = Disconnect{3004, "insufficient state: reconnect and recover"}
	DisconnectConnectionLimit   = Disconnect{3005, "connection limit reached"}
	DisconnectTokenExpired      = Disconnect{3006, "token expired"}
	DisconnectForcedReconnect   = Disconnect{3007, "disconnected by the server: reconnect"}
	DisconnectBadFrame          = Disconnect{3500, "bad frame"}
	DisconnectFrameTooLarge     = Disconnect{3501, "frame too large"}
	DisconnectNoConnect         = Disconnect{3502, "no connect in time"}
	DisconnectTooManyRequests   = Disconnect{3503, "too many requests"}
	DisconnectForced            = Disconnect{3504, "disconnected by the server"}
)

// Close codes of plain mode, which has no disconnect push: the standard
// WebSocket codes for what the server refuses. Other disconnects use the codes
// above.
var (
	DisconnectPlainBinary   = Disconnect{1003, "binary frames are not supported"}
	DisconnectPlainTooLarge = Disconnect{1009, "message too large"}
	DisconnectPlainInternal = Disconnect{1011, "publish failed"}
)
