package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/redcast/redcast/broker"
)

// The transition log is how the nodes of a deployment hand what they
// decided (a channel occupied, a user leaving it) to the one node that
// tells listeners (webhooks), so that listeners hear each channel's
// transitions in the order they happened rather than in the order each
// node's sender got to them. Three keys of one hash slot:
//
//	P:{!transitions}        stream: one entry per transition (field d),
//	                        trimmed to about Config.TransitionLogSize entries
//	P:{!transitions}:lead   string: the node that reads the log, with a TTL
//	P:{!transitions}:done   string: the ID of the last entry the reader
//	                        handed on, all before it handed on too
//
// The entries are the node's (opaque here). The reader renews its lease
// and records its progress with one script (leadLua); another node takes
// over once the lease lapsed and reads on from :done, so that an entry is
// handed on at least once while the log keeps it.

// leadLua takes or renews the lease of the log's reader and records its
// progress.
//
//	KEYS: lead, done
//	ARGV: node, lease (ms), progress ("" for none)
//
// It returns {1, progress recorded} when the node holds the lease, else
// {0, ""}.
const leadLua = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return {0, ''} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
return {1, redis.call('GET', KEYS[2]) or ''}
`

// resignLua gives the lease up if the node holds it.
//
//	KEYS: lead
//	ARGV: node
const resignLua = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`

var (
	leadScript   = rueidis.NewLuaScript(leadLua)
	resignScript = rueidis.NewLuaScript(resignLua)
)

func (b *Broker) transitionKeys() (log, lead, done string) {
	log = b.cfg.Prefix + ":{!transitions}"
	return log, log + ":lead", log + ":done"
}

// AppendTransitions appends entries to the transition log, in order, in
// one round trip.
func (b *Broker) AppendTransitions(ctx context.Context, entries [][]byte) error {
	if err := b.checkOp(ctx); err != nil {
		return err
	}
	log, _, _ := b.transitionKeys()
	cmds := make(rueidis.Commands, 0, len(entries))
	for _, e := range entries {
		cmds = append(cmds, b.client.B().Xadd().Key(log).Maxlen().Almost().Threshold(strconv.Itoa(b.cfg.TransitionLogSize)).Id("*").
			FieldValue().FieldValue("d", rueidis.BinaryString(e)).Build())
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	for _, r := range b.client.DoMulti(octx, cmds...) {
		if err := r.Error(); err != nil {
			return b.wrap(ctx, "append transitions", err)
		}
	}
	return nil
}

// ReadTransitions returns up to count entries of the log after the one
// with ID after ("0" for the first), oldest first; when there is none yet,
// it waits for one up to block (0: not at all), on a connection of its
// own (rueidis gives blocking commands one).
func (b *Broker) ReadTransitions(ctx context.Context, after string, count int, block time.Duration) ([]broker.LogEntry, error) {
	if err := b.checkOp(ctx); err != nil {
		return nil, err
	}
	log, _, _ := b.transitionKeys()
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+block)
	defer cancel()
	cmd := b.client.B().Xread().Count(int64(count)).Streams().Key(log).Id(after).Build()
	if block > 0 {
		cmd = b.client.B().Xread().Count(int64(count)).Block(block.Milliseconds()).Streams().Key(log).Id(after).Build()
	}
	streams, err := b.client.Do(octx, cmd).AsXRead()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, b.wrap(ctx, "read transitions", err)
	}
	entries := streams[log]
	out := make([]broker.LogEntry, 0, len(entries))
	for _, e := range entries {
		out = append(out, broker.LogEntry{ID: e.ID, Data: []byte(e.FieldValues["d"])})
	}
	return out, nil
}

// LeadTransitions takes the lease of the log's reader for node, or renews
// it, for lease; with done set, it records that the entries up to the one
// with that ID were handed on. It reports whether node holds the lease
// and, when it does, the progress recorded ("" when none was ever).
func (b *Broker) LeadTransitions(ctx context.Context, node string, lease time.Duration, done string) (progress string, leading bool, err error) {
	if err := b.checkOp(ctx); err != nil {
		return "", false, err
	}
	_, lead, doneKey := b.transitionKeys()
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	reply, err := leadScript.Exec(octx, b.client, []string{lead, doneKey}, []string{node, ms(lease), done}).ToArray()
	if err != nil {
		return "", false, b.wrap(ctx, "lead transitions", err)
	}
	if len(reply) != 2 {
		return "", false, fmt.Errorf("redis: lead transitions: unexpected reply of %d elements", len(reply))
	}
	held, err := reply[0].AsInt64()
	if err != nil {
		return "", false, fmt.Errorf("redis: lead transitions: %w", err)
	}
	progress, err = reply[1].ToString()
	if err != nil {
		return "", false, fmt.Errorf("redis: lead transitions: %w", err)
	}
	return progress, held == 1, nil
}

// ResignTransitions gives up node's lease of the log's reader, if it holds
// it, so that another node takes over at once.
func (b *Broker) ResignTransitions(ctx context.Context, node string) error {
	if err := b.checkOp(ctx); err != nil {
		return err
	}
	_, lead, _ := b.transitionKeys()
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := resignScript.Exec(octx, b.client, []string{lead}, []string{node}).Error(); err != nil {
		return b.wrap(ctx, "resign transitions", err)
	}
	return nil
}
