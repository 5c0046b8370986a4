package redis

import (
	"context"
	"strconv"

	"github.com/redis/rueidis"
)

// The sweep registry is one sorted set, P:sweep: channel -> the time (Unix
// ms, Redis clock) by which every presence entry its nodes added last will
// have expired. A node that adds presence entries a crash must not leave
// behind (those whose leave a webhook reports) marks the channel at each
// add; every node asks for the channels due (MarkSweep's time passed) and
// expires their entries, so that a crashed node's entries are removed, and
// reported once, even when no live node serves the channel any more.

// sweepMarkLua marks a channel: due once its entries' lifetime passed,
// never earlier than an earlier mark said (GT).
//
//	KEYS: the registry
//	ARGV: channel, lifetime (ms)
const sweepMarkLua = nowMs + `
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])
return 1
`

// sweepDueLua returns up to ARGV[1] channels that are due.
//
//	KEYS: the registry
const sweepDueLua = nowMs + `
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
`

// sweepDoneLua forgets a channel unless it was marked again since it was
// due.
//
//	KEYS: the registry
//	ARGV: channel
const sweepDoneLua = nowMs + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= now then
	redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
`

var (
	sweepMarkScript = rueidis.NewLuaScript(sweepMarkLua)
	sweepDueScript  = rueidis.NewLuaScript(sweepDueLua)
	sweepDoneScript = rueidis.NewLuaScript(sweepDoneLua)
)

func (b *Broker) sweepKey() []string { return []string{b.cfg.Prefix + ":sweep"} }

// MarkSweep registers channel for sweeping: it is due once the presence
// entries added until now have expired (PresenceTiming().Lifetime later),
// unless marked again. Call it after each add of an entry to sweep.
func (b *Broker) MarkSweep(ctx context.Context, channel string) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := sweepMarkScript.Exec(octx, b.client, b.sweepKey(), []string{channel, ms(b.PresenceTiming().Lifetime)}).Error()
	if err != nil {
		return b.wrap(ctx, "mark sweep", err)
	}
	return nil
}

// DueSweeps returns up to limit channels whose marked entries may have
// expired: the caller expires their presence (ExpirePresence) and, once it
// is empty, calls DoneSweep. Every node gets the same channels; expiry
// gives each entry to one of them.
func (b *Broker) DueSweeps(ctx context.Context, limit int) ([]string, error) {
	if err := b.check(ctx, "-"); err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	chs, err := sweepDueScript.Exec(octx, b.client, b.sweepKey(), []string{strconv.Itoa(limit)}).AsStrSlice()
	if err != nil {
		return nil, b.wrap(ctx, "due sweeps", err)
	}
	return chs, nil
}

// DoneSweep forgets a swept channel, unless MarkSweep marked it again
// meanwhile.
func (b *Broker) DoneSweep(ctx context.Context, channel string) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := sweepDoneScript.Exec(octx, b.client, b.sweepKey(), []string{channel}).Error(); err != nil {
		return b.wrap(ctx, "done sweep", err)
	}
	return nil
}
