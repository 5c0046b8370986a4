// Package auth decides who a client is and what it may do: it verifies the
// JWTs clients present (connection tokens and subscription tokens for
// private channels), applies the per-namespace channel permissions, and loads
// redcast's JSON configuration file.
//
// # Tokens
//
// A [Verifier] checks connection tokens with [Verifier.VerifyConnect] and
// subscription tokens with [Verifier.VerifySubscribe]. Algorithms are pinned:
// HS256 when the configuration has a shared secret, and the algorithms of the
// key type (RS256/RS384/RS512 for RSA, ES256/ES384/ES512 by ECDSA curve) when
// it has public keys. A token signed with any other algorithm, alg "none"
// included, is refused before its signature is looked at, and each key type
// is only ever used with its own algorithms, so an HMAC token "signed" with a
// public key (the classic key-confusion attack) cannot verify.
//
// Connection token claims:
//
//	sub       user id (required, non-empty)
//	exp       expiry (optional unless Config.RequireExpiry; enforced when present)
//	nbf, iat  enforced when present: a token from the future is refused
//	aud, iss  required to match when Config.Audience / Config.Issuer are set
//	info      optional JSON object (at most 1 KiB) shown to other clients
//	channels  optional list of channels the user may subscribe to without a
//	          subscription token
//
// Subscription token claims: sub (the connecting user), channel (the channel
// subscribed to), exp, and aud/iss as above.
//
// # Errors
//
// Every refusal is a *[protocol.Error] the node can send to the client as it
// is. A token that is not acceptable is [ErrUnauthorized] (code 114); an
// expired token is [ErrTokenExpired] (code 115), which tells the client to
// fetch a fresh token. Permission checks answer with the existing codes 105
// (invalid channel), 106 (unknown namespace), 107 (permission denied) and 111
// (not available). Use errors.Is with the sentinels: protocol errors match by
// code.
//
// # Permissions
//
// A [Policy] maps namespaces (the part of a channel name before the first
// ':') to [Namespace] options; a channel of any other namespace is refused.
// A channel whose name contains '#' followed by a comma-separated list of
// users ("dm:#alice,bob") is user-limited: only the users it names may use
// it, whatever the namespace says.
//
// # Concurrency
//
// A Verifier and a Policy are immutable once built (do not change a Policy's
// fields after its first use) and safe for concurrent use.
package auth
