package redis

import (
	"context"
	"fmt"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

var _ broker.PresenceExpirer = (*Broker)(nil)

// The presence of a channel C under prefix P is four keys of C's hash
// slot (see scripts.go for the others):
//
//	P:{C}:p  hash: client ID -> encoded client info
//	P:{C}:z  sorted set: client ID -> expiry (Unix ms, Redis clock)
//	P:{C}:u  hash: user -> how many of its clients are in P:{C}:p
//	P:{C}:c  string: how many users entered and left so far (the last
//	         PresenceChange.Seq)
//
// Every add extends the keys' TTL to PresenceKeyTTL (an hour past
// PresenceTTL by default), so they vanish together once nobody refreshes
// or expires them: expired entries are hidden at once and removed by
// ExpirePresence, and the keys' longer life lets a node that comes back
// late still find a crashed node's entries and announce their leaves. The scripts below change them
// together, so that whether a client entered or left (and whether its user
// did) is decided once, in Redis, whichever nodes call at the same time.

// presenceLuaLib holds the helpers of the presence scripts: userOf reads
// the user from an encoded client info (see appendInfo: uvarint length and
// client ID, uvarint length and user, info), and forget removes a client,
// returning its info and, when it was its user's last client, the
// change's number (numbered), else 0.
const presenceLuaLib = nowMs + `
local function field(s, i)
	local n, mul = 0, 1
	while true do
		local c = string.byte(s, i)
		i = i + 1
		n = n + (c % 128) * mul
		if c < 128 then break end
		mul = mul * 128
	end
	return string.sub(s, i, i + n - 1), i + n
end
local function userOf(info)
	local _, i = field(info, 1)
	return (field(info, i))
end
local function numbered(s, ttl)
	local n = redis.call('INCR', s)
	if n == 1 then redis.call('PEXPIRE', s, ttl) end
	return n
end
local function forget(p, z, u, s, ttl, id)
	local info = redis.call('HGET', p, id)
	redis.call('ZREM', z, id)
	if not info then return nil, 0 end
	redis.call('HDEL', p, id)
	local user = userOf(info)
	if user ~= '' then
		if redis.call('HINCRBY', u, user, -1) > 0 then return info, 0 end
		redis.call('HDEL', u, user)
	end
	return info, numbered(s, ttl)
end
`

// presenceAddLua records or refreshes a client.
//
//	KEYS: presence hash, expiry set, user counts, change count
//	ARGV: client ID, encoded info, user, lifetime (ms), key TTL (ms)
//
// It returns {entered (0 or 1), the user's entry's number or 0}.
const presenceAddLua = presenceLuaLib + `
local p, z, u, s = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entered = redis.call('HSET', p, ARGV[1], ARGV[2])
redis.call('ZADD', z, now + tonumber(ARGV[4]), ARGV[1])
local first = 0
if entered == 1 and (ARGV[3] == '' or redis.call('HINCRBY', u, ARGV[3], 1) == 1) then
	first = numbered(s, ARGV[5])
end
for _, k in ipairs(KEYS) do
	redis.call('PEXPIRE', k, ARGV[5])
end
return {entered, first}
`

// presenceRemoveLua forgets a client.
//
//	KEYS: presence hash, expiry set, user counts, change count
//	ARGV: client ID, key TTL (ms)
//
// It returns {} when the client was not there, else {info, the user's
// leave's number or 0}.
const presenceRemoveLua = presenceLuaLib + `
local info, last = forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[1])
if not info then return {} end
return {info, last}
`

// presenceExpireLua removes expired clients, the oldest first, at most
// ARGV[1] of them.
//
//	KEYS: presence hash, expiry set, user counts, change count
//	ARGV: the most to remove, key TTL (ms)
//
// It returns {n, info, leave number or 0, info, leave number or 0, ...}, n being how many
// expired entries it removed from the expiry set: an entry whose info is
// gone from the presence hash (evicted) is removed unreported, so fewer
// infos than n come back, and only n says whether more may be left.
const presenceExpireLua = presenceLuaLib + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {#ids}
for _, id in ipairs(ids) do
	local info, last = forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], id)
	if info then
		out[#out + 1] = info
		out[#out + 1] = last
	end
end
return out
`

// presenceLua returns the infos of the clients that have not expired.
//
//	KEYS: presence hash, expiry set
const presenceLua = nowMs + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local out = {}
for i = 1, #ids, 1000 do
	local infos = redis.call('HMGET', KEYS[1], unpack(ids, i, math.min(i + 999, #ids)))
	for _, info in ipairs(infos) do
		if info then out[#out + 1] = info end
	end
end
return out
`

var (
	presenceAddScript    = rueidis.NewLuaScript(presenceAddLua)
	presenceRemoveScript = rueidis.NewLuaScript(presenceRemoveLua)
	presenceExpireScript = rueidis.NewLuaScript(presenceExpireLua)
	presenceScript       = rueidis.NewLuaScript(presenceLua)
)

// expireBatch is the most entries one run of presenceExpireLua removes,
// so that a channel with many expired clients does not block Redis.
const expireBatch = 500

// presenceKeys returns the keys of the channel's presence.
func (b *Broker) presenceKeys(channel string) []string {
	tag := b.tag(channel)
	return []string{tag + ":p", tag + ":z", tag + ":u", tag + ":c"}
}

// PresenceTiming returns broker.NewPresenceTiming(Config.PresenceTTL).
func (b *Broker) PresenceTiming() broker.PresenceTiming {
	return broker.NewPresenceTiming(b.cfg.PresenceTTL)
}

// AddPresence records info in the channel, or refreshes it: the entry
// expires PresenceTiming().Lifetime later unless refreshed again. A node
// that crashes stops refreshing, so its clients expire; ExpirePresence
// removes them.
func (b *Broker) AddPresence(ctx context.Context, channel string, info *protocol.ClientInfo) (broker.PresenceChange, error) {
	if err := b.check(ctx, channel); err != nil {
		return broker.PresenceChange{}, err
	}
	if info == nil {
		return broker.PresenceChange{}, errNilInfo
	}
	timing := b.PresenceTiming()
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	reply, err := presenceAddScript.Exec(octx, b.client, b.presenceKeys(channel),
		[]string{info.Client, encodeInfo(info), info.User, ms(timing.Lifetime), ms(b.cfg.PresenceKeyTTL)}).AsIntSlice()
	if err != nil {
		return broker.PresenceChange{}, b.wrap(ctx, "add presence", err)
	}
	if len(reply) != 2 {
		return broker.PresenceChange{}, fmt.Errorf("redis: add presence: unexpected reply of %d elements", len(reply))
	}
	if reply[0] == 0 {
		return broker.PresenceChange{}, nil
	}
	return broker.PresenceChange{Client: info, User: reply[1] > 0, Seq: uint64(reply[1])}, nil
}

// RemovePresence forgets the client in the channel. Forgetting a client
// that is not there is not an error.
func (b *Broker) RemovePresence(ctx context.Context, channel, clientID string) (broker.PresenceChange, error) {
	if err := b.check(ctx, channel); err != nil {
		return broker.PresenceChange{}, err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	reply, err := presenceRemoveScript.Exec(octx, b.client, b.presenceKeys(channel), []string{clientID, ms(b.cfg.PresenceKeyTTL)}).ToArray()
	if err != nil {
		return broker.PresenceChange{}, b.wrap(ctx, "remove presence", err)
	}
	changes, err := decodeChanges(reply)
	if err != nil || len(changes) == 0 {
		return broker.PresenceChange{}, err
	}
	return changes[0], nil
}

// ExpirePresence removes the channel's expired clients and returns them;
// concurrent calls from any nodes never return a client twice.
func (b *Broker) ExpirePresence(ctx context.Context, channel string) ([]broker.PresenceChange, error) {
	if err := b.check(ctx, channel); err != nil {
		return nil, err
	}
	keys := b.presenceKeys(channel)
	var out []broker.PresenceChange
	for {
		octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		reply, err := presenceExpireScript.Exec(octx, b.client, keys, []string{fmt.Sprint(expireBatch), ms(b.cfg.PresenceKeyTTL)}).ToArray()
		cancel()
		if err != nil {
			// What earlier batches removed is returned: it is gone.
			return out, b.wrap(ctx, "expire presence", err)
		}
		if len(reply) == 0 {
			return out, fmt.Errorf("redis: expire presence: empty reply")
		}
		removed, err := reply[0].AsInt64()
		if err != nil {
			return out, fmt.Errorf("redis: expire presence: %w", err)
		}
		changes, err := decodeChanges(reply[1:])
		out = append(out, changes...)
		if err != nil || removed < expireBatch {
			return out, err
		}
	}
}

// decodeChanges reads the {info, leave number or 0, ...} replies of the
// presence scripts.
func decodeChanges(reply []rueidis.RedisMessage) ([]broker.PresenceChange, error) {
	if len(reply)%2 != 0 {
		return nil, fmt.Errorf("redis: presence: unexpected reply of %d elements", len(reply))
	}
	changes := make([]broker.PresenceChange, 0, len(reply)/2)
	for i := 0; i < len(reply); i += 2 {
		s, err := reply[i].ToString()
		if err != nil {
			return changes, err
		}
		info, err := decodeInfo(s)
		if err != nil {
			return changes, err
		}
		seq, err := reply[i+1].AsInt64()
		if err != nil {
			return changes, err
		}
		changes = append(changes, broker.PresenceChange{Client: info, User: seq > 0, Seq: uint64(seq)})
	}
	return changes, nil
}

// Presence returns the clients in the channel whose entries have not
// expired, in no particular order. It removes nothing: ExpirePresence
// does, so that each expiry is reported.
func (b *Broker) Presence(ctx context.Context, channel string) ([]*protocol.ClientInfo, error) {
	if err := b.check(ctx, channel); err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	reply, err := presenceScript.Exec(octx, b.client, b.presenceKeys(channel)[:2], nil).ToArray()
	if err != nil {
		return nil, b.wrap(ctx, "presence", err)
	}
	infos := make([]*protocol.ClientInfo, 0, len(reply))
	for _, m := range reply {
		s, err := m.ToString()
		if err != nil {
			return nil, err
		}
		info, err := decodeInfo(s)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}
