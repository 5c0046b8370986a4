package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
)

var _ broker.RevocationStore = (*Broker)(nil)

// The broker keeps revocations (broker.RevocationStore) in Redis, so that
// every node sees them and they outlive a node's restart. Keys under prefix
// P, one per entry, each expiring with its entry (the Redis clock decides):
//
//	P:rv:t:J  a revoked token id J (jti)
//	P:rv:u:U  user U's tokens issued before this time (Unix ms) are revoked
//	P:rv:b:U  user U is blocked (no expiry)
//
// Each key is used alone, so on a Cluster each lives wherever its slot is.

// revokeLua sets a revocation key, never shortening its life. It compares
// expiries itself (PTTL: -1 is none, that is forever) rather than with
// PEXPIREAT's GT option, which needs Redis 7 where the broker needs 6.2.
//
//	KEYS: the key
//	ARGV: value, until (Unix ms; "" forever), and "max" to keep the
//	      greater of the old and new numeric values, else ""
const revokeLua = nowMs + `
local key, till = KEYS[1], ARGV[2]
local old = redis.call('GET', key)
local value = ARGV[1]
if old and ARGV[3] == 'max' and tonumber(old) > tonumber(value) then
	value = old
end
redis.call('SET', key, value, 'KEEPTTL')
if till == '' then
	redis.call('PERSIST', key)
	return 1
end
local ttl = redis.call('PTTL', key)
if not old or (ttl >= 0 and now + ttl < tonumber(till)) then
	redis.call('PEXPIREAT', key, till)
end
return 1
`

var revokeScript = rueidis.NewLuaScript(revokeLua)

func (b *Broker) revocationKey(kind, id string) string {
	return b.cfg.Prefix + ":rv:" + kind + ":" + id
}

// RevokeToken implements broker.RevocationStore.
func (b *Broker) RevokeToken(ctx context.Context, jti string, until time.Time) error {
	return b.setRevocation(ctx, "revoke token", b.revocationKey("t", jti), "1", until, false)
}

// InvalidateUserTokens implements broker.RevocationStore.
func (b *Broker) InvalidateUserTokens(ctx context.Context, user string, issuedBefore, until time.Time) error {
	return b.setRevocation(ctx, "invalidate user tokens", b.revocationKey("u", user), strconv.FormatInt(issuedBefore.UnixMilli(), 10), until, true)
}

func (b *Broker) setRevocation(ctx context.Context, op, key, value string, until time.Time, keepMax bool) error {
	if err := b.checkOp(ctx); err != nil {
		return err
	}
	untilArg := ""
	if !until.IsZero() {
		if !until.After(time.Now()) {
			return nil // nothing to keep
		}
		untilArg = strconv.FormatInt(until.UnixMilli(), 10)
	}
	mode := ""
	if keepMax {
		mode = "max"
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := revokeScript.Exec(octx, b.client, []string{key}, []string{value, untilArg, mode}).Error(); err != nil {
		return b.wrap(ctx, op, err)
	}
	return nil
}

// BlockUser implements broker.RevocationStore.
func (b *Broker) BlockUser(ctx context.Context, user string) error {
	return b.doRevocation(ctx, "block user", b.client.B().Set().Key(b.revocationKey("b", user)).Value("1").Build())
}

// UnblockUser implements broker.RevocationStore.
func (b *Broker) UnblockUser(ctx context.Context, user string) error {
	return b.doRevocation(ctx, "unblock user", b.client.B().Del().Key(b.revocationKey("b", user)).Build())
}

func (b *Broker) doRevocation(ctx context.Context, op string, cmd rueidis.Completed) error {
	if err := b.checkOp(ctx); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.client.Do(octx, cmd).Error(); err != nil {
		return b.wrap(ctx, op, err)
	}
	return nil
}

// TokenStatus implements broker.RevocationStore: the keys of jti and user
// are read in one pipeline.
func (b *Broker) TokenStatus(ctx context.Context, user, jti string) (broker.TokenStatus, error) {
	var st broker.TokenStatus
	if err := b.checkOp(ctx); err != nil {
		return st, err
	}
	var cmds rueidis.Commands
	if jti != "" {
		cmds = append(cmds, b.client.B().Exists().Key(b.revocationKey("t", jti)).Build())
	}
	if user != "" {
		cmds = append(cmds,
			b.client.B().Exists().Key(b.revocationKey("b", user)).Build(),
			b.client.B().Get().Key(b.revocationKey("u", user)).Build())
	}
	if len(cmds) == 0 {
		return st, nil
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	res := b.client.DoMulti(octx, cmds...)
	if jti != "" {
		n, err := res[0].AsInt64()
		if err != nil {
			return st, b.wrap(ctx, "token status", err)
		}
		st.Revoked = n > 0
		res = res[1:]
	}
	if user != "" {
		n, err := res[0].AsInt64()
		if err != nil {
			return st, b.wrap(ctx, "token status", err)
		}
		st.Blocked = n > 0
		ms, err := res[1].AsInt64()
		switch {
		case rueidis.IsRedisNil(err):
		case err != nil:
			return st, b.wrap(ctx, "token status", err)
		default:
			st.IssuedBefore = time.UnixMilli(ms)
		}
	}
	return st, nil
}

// checkOp returns the error an operation returns before it starts: ctx's,
// or errClosed.
func (b *Broker) checkOp(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return errClosed
	}
	return nil
}
