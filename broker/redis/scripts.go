package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// The Lua scripts the broker runs. Each touches the keys of one channel
// only, all sharing the channel's hash tag, so they stay valid on a Redis
// Cluster. rueidis calls them by SHA (EVALSHA) and falls back to EVAL when
// Redis does not know them (after a restart); New loads them once.
//
// Keys of a channel C under prefix P:
//
//	P:{C}:m  hash: e = epoch, o = latest offset, s = HistorySize of the latest publication,
//	         r = the term of the epoch (see termLua)
//	P:{C}:s  stream: one entry per kept publication, ID "<offset>-0",
//	         fields d = body, x = expiry (Unix ms, Redis clock)
//	P:{C}:p, P:{C}:z, P:{C}:u, P:{C}:c  presence (see presence.go)
//	P:{C}:i:K  string "<offset>:<epoch>": the publication made with
//	         idempotency key K, expiring after the key's TTL
//
// and the pub/sub channel P:{C} carries publications, joins and leaves.

// nowMs is a Lua snippet setting now to the Redis clock in Unix ms. Using
// the Redis clock keeps expiry consistent whichever node writes or reads.
const nowMs = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// termLua defines term(r, mode, adopt), which decides whether a channel's
// epoch, begun in term r (the meta hash's r), still holds on this Redis.
//
// Behind Sentinel and on a Cluster, replication is asynchronous: a
// replica that takes over may lack the last writes its master
// acknowledged, and would give their offsets out again, in the same epoch,
// to other publications. Subscribers would take those for duplicates. So
// an epoch lives in one term only: the master's replication ID
// (master_replid), which Redis draws anew whenever a replica is promoted
// and whenever a master restarts. Every script that writes the meta hash
// runs on the master, so an epoch whose term is this master's own has
// every write of it here; any other starts a new epoch (renew). An epoch
// of the master this one was promoted from (master_replid2) may lack
// writes: renew. A term of another Cluster master comes with a slot
// migration, which moves keys whole: the broker checks that some master
// of the Cluster is still in that term (so its copy was complete when it
// moved) and runs the script again with adopt set to it, or to "!" to
// renew.
//
// mode is "" outside Sentinel and Cluster (no term: a standalone Redis
// keeps or loses its data with its persistence), "sentinel" or
// "cluster". term returns the term to store and whether to renew; or, for
// a term the broker must check, the error "TERM <r>" and nil.
const termLua = `
local function term(r, mode, adopt)
	if mode == '' then
		return '', false
	end
	local info = redis.call('INFO', 'replication')
	local mine = string.match(info, 'master_replid:(%w+)')
	if r == mine or (r and r == adopt) then
		return mine, false
	end
	if r and mode == 'cluster' and adopt == '' and r ~= string.match(info, 'master_replid2:(%w+)') then
		return 'TERM ' .. r, nil
	end
	return mine, true
end
`

// publishLua stores a publication and publishes it, atomically.
//
//	KEYS: stream, meta, and for an idempotent publish its key (P:{C}:i:K)
//	ARGV: pub/sub channel, body, history size, history TTL (ms),
//	      meta TTL (ms), epoch to use if the channel has none,
//	      PUBLISH or SPUBLISH (on a Cluster: the pub/sub channel is in
//	      the same slot as the keys), the idempotency key's TTL (ms;
//	      "" without one), term mode and term to adopt (see termLua;
//	      the term to adopt is last, see settleTerms)
//
// It returns {offset, epoch, 1 if it renewed the epoch else 0, 0}, or a
// TERM error. An idempotent publish whose key is set publishes nothing
// and returns {offset, epoch, 0, 1}, the position of the publication
// that set it; otherwise the key is set, with the position the
// publication gets, in the same script: a crash can lose or double
// neither. The key is looked at once the term is settled (a TERM error
// comes first, and the broker runs the script again), and before the
// epoch is renewed: the publication it names was made in its epoch,
// renewed or not.
const publishLua = nowMs + termLua + `
local stream, meta, idem = KEYS[1], KEYS[2], KEYS[3]
local size = tonumber(ARGV[3])
local m = redis.call('HMGET', meta, 'e', 'r')
local epoch, renewed = m[1], 0
local t, renew = term(m[2], ARGV[9], ARGV[10])
if renew == nil then
	return redis.error_reply(t)
end
if idem then
	local v = redis.call('GET', idem)
	if v then
		local o, e = string.match(v, '^(%d+):(.*)$')
		return {tonumber(o), e, 0, 1}
	end
end
if not epoch or renew then
	if epoch then
		renewed = 1
	end
	epoch = ARGV[6]
	redis.call('DEL', stream)
	redis.call('HSET', meta, 'e', epoch, 'r', t)
elseif t ~= (m[2] or '') then
	redis.call('HSET', meta, 'r', t)
end
local offset = redis.call('HINCRBY', meta, 'o', 1)
redis.call('HSET', meta, 's', size)
redis.call('PEXPIRE', meta, ARGV[5])
if size > 0 then
	local ttl = tonumber(ARGV[4])
	redis.call('XADD', stream, 'MAXLEN', '~', size, string.format('%d-0', offset),
		'd', ARGV[2], 'x', string.format('%d', now + ttl))
	redis.call('PEXPIRE', stream, ttl)
else
	redis.call('DEL', stream)
end
redis.call(ARGV[7], ARGV[1], string.format('p%d:', offset) .. epoch .. ':' .. ARGV[2])
if idem then
	redis.call('SET', idem, string.format('%d:', offset) .. epoch, 'PX', ARGV[8])
end
return {offset, epoch, renewed, 0}
`

// historyLua reads a channel's position and publications in one
// snapshot, giving the channel an epoch if it has none, or a new one if
// its epoch does not hold in this term (see termLua).
//
//	KEYS: stream, meta
//	ARGV: epoch to use if the channel has none, meta TTL (ms) for a new
//	      epoch, since offset ("" for none), limit (negative for all),
//	      term mode and term to adopt
//
// It returns {offset, epoch, renewed, id, body, id, body, ...}, oldest
// first, renewed being 1 if it renewed the epoch, else 0; or a TERM error.
// Only the newest s publications (s from the meta hash) count as history,
// since MAXLEN ~ trims lazily; expired entries are skipped.
const historyLua = nowMs + termLua + `
local stream, meta = KEYS[1], KEYS[2]
local m = redis.call('HMGET', meta, 'e', 'o', 's', 'r')
local epoch = m[1]
local t, renew = term(m[4], ARGV[5], ARGV[6])
if renew == nil then
	return redis.error_reply(t)
end
if not epoch then
	epoch = ARGV[1]
	redis.call('DEL', stream)
	redis.call('HSET', meta, 'e', epoch, 'o', 0, 'r', t)
	redis.call('PEXPIRE', meta, ARGV[2])
	return {0, epoch, 0}
end
local offset = tonumber(m[2]) or 0
if renew then
	redis.call('DEL', stream)
	redis.call('HSET', meta, 'e', ARGV[1], 'r', t)
	return {offset, ARGV[1], 1}
elseif t ~= (m[4] or '') then
	redis.call('HSET', meta, 'r', t)
end
local size = tonumber(m[3]) or 0
local limit = tonumber(ARGV[4])
local out = {offset, epoch, 0}
if limit == 0 or size <= 0 or offset == 0 then
	return out
end
local first = math.max(offset - size + 1, 1)
local latest = ARGV[3] == ''
if not latest then
	first = math.max(first, tonumber(ARGV[3]) + 1)
end
if first > offset then
	return out
end
local lo = string.format('%d-0', first)
local batch = 512
if latest and limit > 0 then
	local got = {}
	local hi = '+'
	while #got < limit do
		local want = math.min(batch, limit - #got)
		local es = redis.call('XREVRANGE', stream, hi, lo, 'COUNT', want)
		for _, e in ipairs(es) do
			if tonumber(e[2][4]) > now then
				got[#got + 1] = e
			end
		end
		if #es < want then
			break
		end
		hi = '(' .. es[#es][1]
	end
	for i = #got, 1, -1 do
		out[#out + 1] = got[i][1]
		out[#out + 1] = got[i][2][2]
	end
	return out
end
local n = 0
local from = lo
while limit < 0 or n < limit do
	local want = batch
	if limit > 0 then
		want = math.min(batch, limit - n)
	end
	local es = redis.call('XRANGE', stream, from, '+', 'COUNT', want)
	for _, e in ipairs(es) do
		if tonumber(e[2][4]) > now then
			out[#out + 1] = e[1]
			out[#out + 1] = e[2][2]
			n = n + 1
		end
	end
	if #es < want then
		break
	end
	from = '(' .. es[#es][1]
end
return out
`

var (
	publishScript = rueidis.NewLuaScript(publishLua)
	rewindScript  = rueidis.NewLuaScript(rewindLua)
	historyScript = rueidis.NewLuaScript(historyLua)
)

// Digests of the scripts run by execMulti: the names Redis knows them by.
var (
	publishSHA = scriptSHA(publishLua)
	historySHA = scriptSHA(historyLua)
)

func scriptSHA(src string) string {
	sum := sha1.Sum([]byte(src))
	return hex.EncodeToString(sum[:])
}

// execMulti runs a script once for each of execs, with EVALSHA in one
// pipeline (one per node of a Cluster): one round trip. (rueidis's
// Lua.ExecMulti sends SCRIPT LOAD to every node before every batch, a
// round trip of its own; the scripts are loaded when the broker starts
// instead.) A node answers NOSCRIPT when it lost them (it restarted, or a
// replica without them took over): the scripts are loaded again, and the
// calls answered NOSCRIPT run again, in one pipeline, falling back to EVAL
// where a node still lacks them. When ordered is set, a call for a channel
// whose later call in the batch ran (its node had the scripts, or another
// caller loaded them meanwhile) is not run again, which would reorder the
// channel's publications: it fails with the NOSCRIPT error.
func (b *Broker) execMulti(ctx context.Context, s *rueidis.Lua, sha string, ordered bool, execs []rueidis.LuaExec) []rueidis.RedisResult {
	evalsha := func(e rueidis.LuaExec) rueidis.Completed {
		return b.client.B().Evalsha().Sha1(sha).Numkeys(int64(len(e.Keys))).Key(e.Keys...).Arg(e.Args...).Build()
	}
	cmds := make(rueidis.Commands, len(execs))
	for i, e := range execs {
		cmds[i] = evalsha(e)
	}
	res := b.client.DoMulti(ctx, cmds...)
	var (
		lost  bool
		again []int
	)
	for i, r := range res {
		if !isNoScript(r.Error()) {
			continue
		}
		lost = true
		if !ordered || !ranLater(res, execs, i, isNoScript) {
			again = append(again, i)
		}
	}
	if !lost {
		return res
	}
	_ = b.loadScripts(ctx) // where it fails, EVAL below stands in
	if len(again) == 0 {
		return res
	}
	cmds = cmds[:0]
	for _, i := range again {
		cmds = append(cmds, evalsha(execs[i]))
	}
	for j, r := range b.client.DoMulti(ctx, cmds...) {
		i := again[j]
		if isNoScript(r.Error()) {
			r = s.Exec(ctx, b.client, execs[i].Keys, execs[i].Args)
		}
		res[i] = r
	}
	return res
}

// ranLater reports whether a call after the i-th, for the same channel
// (the same first key), ran: Redis answered it with anything but an error
// that refused reports (NOSCRIPT, a TERM error).
func ranLater(res []rueidis.RedisResult, execs []rueidis.LuaExec, i int, refused func(error) bool) bool {
	for k := i + 1; k < len(res); k++ {
		if execs[k].Keys[0] == execs[i].Keys[0] && !refused(res[k].Error()) {
			return true
		}
	}
	return false
}

func isNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// allScripts are loaded by New, so that the first calls find them.
var allScripts = []string{publishLua, historyLua, presenceAddLua, presenceRemoveLua, presenceExpireLua, presenceLua, rewindLua, revokeLua}

// rewindLua starts a new epoch for a channel whose stream went back: a
// node saw offset ARGV[2] in epoch ARGV[1], but Redis now has a lower
// offset in that epoch (a failover to a replica that had not received the
// latest writes). Offsets would be given out again for other publications;
// a new epoch makes every subscriber recover (and learn that it cannot)
// instead of taking them for duplicates. Only the first node to notice
// changes the epoch; the stream of the old epoch is dropped.
//
//	KEYS: stream, meta
//	ARGV: the epoch seen, the offset seen, the new epoch, term mode
//
// It returns {offset, epoch}, the channel's position afterwards.
const rewindLua = termLua + `
local m = redis.call('HMGET', KEYS[2], 'e', 'o')
if m[1] == ARGV[1] and tonumber(m[2] or 0) < tonumber(ARGV[2]) then
	local t = term(nil, ARGV[4], '')
	redis.call('DEL', KEYS[1])
	redis.call('HSET', KEYS[2], 'e', ARGV[3], 'r', t)
	m[1] = ARGV[3]
end
return {tonumber(m[2] or 0), m[1]}
`
