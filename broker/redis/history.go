package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
	"github.com/redcast/redcast/protocol"
)

// History runs one Lua script that reads the channel's position and the
// selected publications in one snapshot, and gives the channel an epoch if
// it has none (the one its first publication will get), or a new one if
// its epoch began on another master (see termLua).
func (b *Broker) History(ctx context.Context, channel string, opts broker.HistoryOptions) (broker.HistoryResult, error) {
	if err := b.check(ctx, channel); err != nil {
		return broker.HistoryResult{}, err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	keys, args := b.historyArgs(channel, opts)
	res, err := b.parseHistory(b.runScript(octx, historyScript, historySHA, keys, args))
	if err != nil {
		return broker.HistoryResult{}, b.wrap(ctx, "history", err)
	}
	return res, nil
}

// historyCall is one channel's history request in a batch.
type historyCall struct {
	channel string
	opts    broker.HistoryOptions
}

// historyMany reads the history of several channels in pipelined batches.
// results[i] and errs[i] answer calls[i].
func (b *Broker) historyMany(ctx context.Context, calls []historyCall) ([]broker.HistoryResult, []error) {
	results := make([]broker.HistoryResult, len(calls))
	errs := make([]error, len(calls))
	if len(calls) == 1 {
		results[0], errs[0] = b.History(ctx, calls[0].channel, calls[0].opts)
		return results, errs
	}
	const chunk = 256
	for start := 0; start < len(calls); start += chunk {
		part := calls[start:min(start+chunk, len(calls))]
		execs := make([]rueidis.LuaExec, len(part))
		for i, c := range part {
			execs[i].Keys, execs[i].Args = b.historyArgs(c.channel, c.opts)
		}
		octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		replies := b.runScripts(octx, historyScript, historySHA, false, execs)
		cancel()
		for i, r := range replies {
			res, err := b.parseHistory(r)
			if err != nil {
				err = b.wrap(ctx, "history", err)
			}
			results[start+i], errs[start+i] = res, err
		}
	}
	return results, errs
}

func (b *Broker) historyArgs(channel string, opts broker.HistoryOptions) (keys, args []string) {
	since := ""
	if opts.Since != nil {
		since = strconv.FormatUint(opts.Since.Offset, 10)
	}
	limit := opts.Limit
	if limit < 0 {
		limit = -1
	}
	tag := b.tag(channel)
	// The term to adopt is last: see runScripts.
	return []string{tag + ":s", tag + ":m"}, []string{newEpoch(), ms(b.cfg.StreamTTL), since, strconv.Itoa(limit), b.term, ""}
}

// parseHistory reads a reply of historyLua.
func (b *Broker) parseHistory(r rueidis.RedisResult) (broker.HistoryResult, error) {
	reply, err := r.ToArray()
	if err != nil {
		return broker.HistoryResult{}, err
	}
	if len(reply) < 3 || len(reply)%2 != 1 {
		return broker.HistoryResult{}, fmt.Errorf("redis: history: unexpected reply of %d elements", len(reply))
	}
	offset, err := reply[0].AsInt64()
	if err != nil {
		return broker.HistoryResult{}, err
	}
	epoch, err := reply[1].ToString()
	if err != nil {
		return broker.HistoryResult{}, err
	}
	b.countRenewed(reply[2])
	res := broker.HistoryResult{Position: protocol.StreamPosition{Offset: uint64(offset), Epoch: epoch}}
	if n := (len(reply) - 3) / 2; n > 0 {
		res.Publications = make([]*protocol.Publication, 0, n)
	}
	for i := 3; i < len(reply); i += 2 {
		id, err := reply[i].ToString()
		if err != nil {
			return broker.HistoryResult{}, err
		}
		body, err := reply[i+1].ToString()
		if err != nil {
			return broker.HistoryResult{}, err
		}
		idOffset, _, _ := strings.Cut(id, "-")
		off, err := strconv.ParseUint(idOffset, 10, 64)
		if err != nil {
			return broker.HistoryResult{}, fmt.Errorf("redis: history: bad entry id %q", id)
		}
		pub, err := decodeBody(body)
		if err != nil {
			return broker.HistoryResult{}, err
		}
		pub.Offset = off
		res.Publications = append(res.Publications, pub)
	}
	return res, nil
}
