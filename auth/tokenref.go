package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// TokenRef is what a token is revoked by: its user (sub), id (jti) and
// issue time (iat).
type TokenRef struct {
	User     string
	ID       string
	IssuedAt time.Time
}

// Ref returns what the connection token of c is revoked by.
func (c *Credentials) Ref() TokenRef {
	return TokenRef{User: c.User, ID: c.TokenID, IssuedAt: c.IssuedAt}
}

// ReadTokenRef reads the sub, jti and iat claims of a token WITHOUT
// verifying it: use it only on a token a Verifier accepted (a subscription
// token after VerifySubscribe), to learn what it can be revoked by. It
// reports false for anything that is not a JWT with a JSON object payload
// of at most MaxTokenSize bytes; claims of the wrong type are left out.
func ReadTokenRef(token string) (TokenRef, bool) {
	if len(token) > MaxTokenSize {
		return TokenRef{}, false
	}
	_, rest, ok := strings.Cut(token, ".")
	if !ok {
		return TokenRef{}, false
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return TokenRef{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return TokenRef{}, false
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(raw, &c); err != nil || c == nil {
		return TokenRef{}, false
	}
	var ref TokenRef
	_ = json.Unmarshal(c["sub"], &ref.User)
	_ = json.Unmarshal(c["jti"], &ref.ID)
	var iat float64
	if json.Unmarshal(c["iat"], &iat) == nil && iat > 0 && iat < 1<<40 {
		ref.IssuedAt = time.Unix(int64(iat), 0)
	}
	return ref, true
}
