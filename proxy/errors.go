package proxy

import (
	"errors"
	"fmt"
)

// ErrUnavailable is wrapped by every error of a call the backend did not
// answer with a reply: see *UnavailableError.
var ErrUnavailable = errors.New("proxy: backend unavailable")

// Reason says why a call failed without a reply, as metrics label it.
type Reason string

// The reasons of an *UnavailableError.
const (
	// ReasonTimeout: no reply within Config.Timeout.
	ReasonTimeout Reason = "timeout"
	// ReasonUnreachable: the connection to the backend failed.
	ReasonUnreachable Reason = "unreachable"
	// ReasonStatus: the backend answered an HTTP status other than 200.
	ReasonStatus Reason = "status"
	// ReasonBadReply: the body is not a reply (not JSON, too large, or a
	// result with fields of the wrong shape).
	ReasonBadReply Reason = "bad_reply"
	// ReasonOverloaded: Config.MaxInFlight calls were under way for the
	// whole timeout.
	ReasonOverloaded Reason = "overloaded"
)

// UnavailableError is a call that got no usable reply. Message is for the
// client: it says what went wrong, never what the backend sent.
type UnavailableError struct {
	Reason  Reason
	Message string
	// Err is the cause, for logs (it may name the backend's address).
	Err error
}

func (e *UnavailableError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("proxy: %s: %v", e.Message, e.Err)
	}
	return "proxy: " + e.Message
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

func unavailable(r Reason, cause error, format string, args ...any) *UnavailableError {
	return &UnavailableError{Reason: r, Message: fmt.Sprintf(format, args...), Err: cause}
}

// Error is the backend's refusal: {"error": {"code", "message"}}. The
// caller decides what the client sees (see docs/backend.md).
type Error struct {
	Code      uint32 `json:"code"`
	Message   string `json:"message"`
	Temporary bool   `json:"temporary"`
}

func (e *Error) Error() string { return fmt.Sprintf("proxy: backend error %d: %s", e.Code, e.Message) }

// Disconnect is the backend's order to close the connection:
// {"disconnect": {"code", "reason"}}.
type Disconnect struct {
	Code   uint32 `json:"code"`
	Reason string `json:"reason"`
}

func (d *Disconnect) Error() string {
	return fmt.Sprintf("proxy: backend disconnect %d: %s", d.Code, d.Reason)
}
