package api

import (
	"context"
	"time"

	"github.com/redcast/redcast/protocol"
)

// The endpoints of revocation: see redcast.Node.RevokeToken and
// docs/api.md. Times are Unix seconds, as in JWT claims.

// handleRevocations adds the revocation endpoints to h's routes.
func (h *Handler) handleRevocations() {
	h.mux.HandleFunc("POST /api/revoke_token", endpoint(h, h.revokeToken))
	h.mux.HandleFunc("POST /api/invalidate_user_tokens", endpoint(h, h.invalidateUserTokens))
	h.mux.HandleFunc("POST /api/block_user", endpoint(h, h.blockUser))
	h.mux.HandleFunc("POST /api/unblock_user", endpoint(h, h.unblockUser))
}

// RevokeTokenRequest is the body of /api/revoke_token: the token's jti,
// and its exp (Unix seconds), until which the revocation is kept; 0 or
// absent keeps it forever.
type RevokeTokenRequest struct {
	JTI      string `json:"jti"`
	ExpireAt int64  `json:"expire_at"`
}

func (h *Handler) revokeToken(ctx context.Context, req *RevokeTokenRequest) (empty, error) {
	at, err := unixTime("expire_at", req.ExpireAt)
	if err != nil {
		return empty{}, err
	}
	return empty{}, h.node.RevokeToken(ctx, req.JTI, at)
}

// InvalidateUserTokensRequest is the body of /api/invalidate_user_tokens:
// the user's tokens issued (iat) before IssuedBefore (Unix seconds,
// required) are revoked, until ExpireAt (Unix seconds; 0 or absent:
// forever), which should be the exp of the last token so issued.
type InvalidateUserTokensRequest struct {
	User         string `json:"user"`
	IssuedBefore int64  `json:"issued_before"`
	ExpireAt     int64  `json:"expire_at"`
}

func (h *Handler) invalidateUserTokens(ctx context.Context, req *InvalidateUserTokensRequest) (empty, error) {
	before, err := unixTime("issued_before", req.IssuedBefore)
	if err != nil {
		return empty{}, err
	}
	at, err := unixTime("expire_at", req.ExpireAt)
	if err != nil {
		return empty{}, err
	}
	return empty{}, h.node.InvalidateUserTokens(ctx, req.User, before, at)
}

// UserRequest is the body of /api/block_user and /api/unblock_user.
type UserRequest struct {
	User string `json:"user"`
}

func (h *Handler) blockUser(ctx context.Context, req *UserRequest) (empty, error) {
	return empty{}, h.node.BlockUser(ctx, req.User)
}

func (h *Handler) unblockUser(ctx context.Context, req *UserRequest) (empty, error) {
	return empty{}, h.node.UnblockUser(ctx, req.User)
}

// maxUnixSeconds bounds the times the endpoints take (the year 9999), so
// that they convert to milliseconds without overflow.
const maxUnixSeconds = 253402300799

// unixTime converts seconds to a time: 0 is the zero time (none), a
// negative or too large number is error 101.
func unixTime(field string, sec int64) (time.Time, error) {
	switch {
	case sec == 0:
		return time.Time{}, nil
	case sec < 0 || sec > maxUnixSeconds:
		return time.Time{}, protocol.ErrBadRequest.WithMessage("%s must be Unix seconds between 1 and %d", field, int64(maxUnixSeconds))
	}
	return time.Unix(sec, 0), nil
}
