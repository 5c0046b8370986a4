package broker

import (
	"context"
	"time"
)

// RevocationStore keeps what the application's backend revoked: token ids
// (jti), the tokens of a user issued before some time, and blocked users.
// The node checks it before it accepts a connection token, a refreshed
// token or a subscription token; what it keeps is shared by every node
// that shares the store (Redis), or by one node (memory). All methods are
// safe for concurrent use.
//
// Times are kept at millisecond precision. An until in the past keeps
// nothing; a zero until keeps the entry until it is removed (blocks) or
// forever (revocations).
type RevocationStore interface {
	// RevokeToken revokes the token with id jti until until (the token's
	// exp, after which it is refused anyway).
	RevokeToken(ctx context.Context, jti string, until time.Time) error
	// InvalidateUserTokens revokes every token of user issued before
	// issuedBefore, until until. A later call with an earlier issuedBefore
	// does not move it back, and the entry is kept until the later of the
	// untils (zero: forever).
	InvalidateUserTokens(ctx context.Context, user string, issuedBefore, until time.Time) error
	// BlockUser blocks a user until UnblockUser.
	BlockUser(ctx context.Context, user string) error
	// UnblockUser lifts a block; unblocking a user who is not blocked is
	// not an error.
	UnblockUser(ctx context.Context, user string) error
	// TokenStatus returns what the store holds against a token of user
	// with id jti (either may be empty: nothing is looked up for it), in
	// one consistent read per key and, on Redis, one round trip.
	TokenStatus(ctx context.Context, user, jti string) (TokenStatus, error)
}

// TokenStatus is what a RevocationStore holds against one token.
type TokenStatus struct {
	// Revoked: the token's jti is revoked.
	Revoked bool
	// Blocked: the token's user is blocked.
	Blocked bool
	// IssuedBefore, when not zero: the user's tokens issued before it are
	// revoked.
	IssuedBefore time.Time
}

// Refuses reports whether s refuses a token issued at iat: revoked,
// blocked, or issued before IssuedBefore. A token without iat (zero) is
// taken as issued before any IssuedBefore.
func (s TokenStatus) Refuses(iat time.Time) bool {
	return s.Revoked || s.Blocked || (!s.IssuedBefore.IsZero() && iat.Before(s.IssuedBefore))
}
