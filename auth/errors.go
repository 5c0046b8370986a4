package auth

import "github.com/redcast/redcast/protocol"

// Error codes of authentication. They extend the protocol's 100-199 range
// and are documented in docs/protocol.md. Compare with errors.Is: a
// *protocol.Error matches any other with the same code, so the detailed
// errors this package returns match these sentinels.
var (
	// ErrUnauthorized (114) refuses a token that is not acceptable: malformed,
	// signed with an algorithm or key that is not configured, with a bad
	// signature, not yet valid, for another audience or issuer, or without a
	// user. The client should not retry with the same token.
	ErrUnauthorized = protocol.ErrUnauthorized
	// ErrTokenExpired (115) refuses a token whose exp has passed. The client
	// should get a fresh token from its backend and try again.
	ErrTokenExpired = protocol.ErrTokenExpired
)

func unauthorized(format string, args ...any) *protocol.Error {
	return ErrUnauthorized.WithMessage(format, args...)
}

func denied(format string, args ...any) *protocol.Error {
	return protocol.ErrPermissionDenied.WithMessage(format, args...)
}
