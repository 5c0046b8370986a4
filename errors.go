package redcast

import (
	"context"
	"errors"
	"net/http"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// ProtocolError returns the error a client or a backend is shown for err,
// the one mapping every transport and the HTTP API use: a *protocol.Error
// as it is; a broker that cannot serve now (broker.ErrUnavailable, or a
// deadline that passed waiting for it) as protocol.ErrBrokerUnavailable;
// anything else as protocol.ErrInternal, with internal true: the caller
// logs err, since the client learns nothing of it.
func ProtocolError(err error) (perr *protocol.Error, internal bool) {
	if perr, ok := errors.AsType[*protocol.Error](err); ok {
		return perr, false
	}
	if errors.Is(err, broker.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return protocol.ErrBrokerUnavailable, false
	}
	return protocol.ErrInternal, true
}

// HTTPStatus is the HTTP status that answers a request refused with perr:
// 500 for an internal error, 503 for an unavailable broker or backend, 401 for a
// missing, bad or expired token, 403 for a permission refused, and 400 for
// every other error of the request.
func HTTPStatus(perr *protocol.Error) int {
	switch perr.Code {
	case protocol.ErrInternal.Code:
		return http.StatusInternalServerError
	case protocol.ErrBrokerUnavailable.Code, protocol.ErrBackendUnavailable.Code:
		return http.StatusServiceUnavailable
	case protocol.ErrUnauthorized.Code, protocol.ErrTokenExpired.Code:
		return http.StatusUnauthorized
	case protocol.ErrPermissionDenied.Code:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}
