package redis

import (
	"context"
	"slices"
	"strings"

	"github.com/redis/rueidis"
)

// The term of a channel's epoch is the replication ID of the master it
// began on (see termLua): behind Sentinel and on a Cluster an epoch holds
// only while that master serves the channel, so that a replica promoted
// without the last writes cannot give their offsets out again in the same
// epoch.

// Term modes, the scripts' argument saying how to treat terms.
const (
	termNone     = ""         // standalone: no terms
	termSentinel = "sentinel" // renew the epoch on any other term
	termCluster  = "cluster"  // and ask the broker about another master's term
	// termRenew, given as the term to adopt, makes a script renew the
	// epoch of a term the broker could not vouch for.
	termRenew = "!"
)

// termMode returns the scripts' term mode for a client.
func termMode(c rueidis.Client) string {
	switch c.Mode() {
	case rueidis.ClientModeCluster:
		return termCluster
	case rueidis.ClientModeSentinel:
		return termSentinel
	}
	return termNone
}

// termOf returns the term of a script's TERM error reply: the channel's
// epoch began in a term that is neither this master's nor its former
// master's, which a slot migration brings.
func termOf(err error) (string, bool) {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return "", false
	}
	return strings.CutPrefix(re.Error(), "TERM ")
}

func isTermErr(err error) bool {
	_, ok := termOf(err)
	return ok
}

// runScript runs a script once (EVALSHA, falling back to EVAL) and
// settles a TERM error as runScripts does.
func (b *Broker) runScript(ctx context.Context, s *rueidis.Lua, sha string, keys, args []string) rueidis.RedisResult {
	res := s.Exec(ctx, b.client, keys, args)
	if !isTermErr(res.Error()) {
		return res
	}
	return b.settleTerms(ctx, s, sha, false, []rueidis.LuaExec{{Keys: keys, Args: args}}, []rueidis.RedisResult{res})[0]
}

// runScripts runs a script once for each of execs, as execMulti does
// (whose ordered it takes), and settles the calls answered with a TERM
// error (see settleTerms).
func (b *Broker) runScripts(ctx context.Context, s *rueidis.Lua, sha string, ordered bool, execs []rueidis.LuaExec) []rueidis.RedisResult {
	return b.settleTerms(ctx, s, sha, ordered, execs, b.execMulti(ctx, s, sha, ordered, execs))
}

// settleTerms settles the calls of execs answered (in res) with a TERM
// error: each such term is adopted if a master of the Cluster is in it
// now (the channel's keys moved from it whole, with every write of the
// epoch), and renewed otherwise; those calls run again, told which, and
// their results replace those in res, which settleTerms returns. The term
// to adopt is the last argument of each exec.
func (b *Broker) settleTerms(ctx context.Context, s *rueidis.Lua, sha string, ordered bool, execs []rueidis.LuaExec, res []rueidis.RedisResult) []rueidis.RedisResult {
	var again []int
	for i, r := range res {
		if isTermErr(r.Error()) && (!ordered || !ranLater(res, execs, i, isTermErr)) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return res
	}
	var live []string // the masters' terms, read once
	retry := make([]rueidis.LuaExec, len(again))
	for j, i := range again {
		term, _ := termOf(res[i].Error())
		if live == nil {
			live = b.masterTerms(ctx)
		}
		decision := termRenew
		if slices.Contains(live, term) {
			decision = term
		}
		args := slices.Clone(execs[i].Args)
		args[len(args)-1] = decision
		retry[j] = rueidis.LuaExec{Keys: execs[i].Keys, Args: args}
	}
	for j, r := range b.execMulti(ctx, s, sha, ordered, retry) {
		res[again[j]] = r
	}
	return res
}

// masterTerms returns the replication IDs of the Cluster's masters, as a
// topology read now names them; a master that does not answer is left
// out (its terms are renewed). It never returns nil.
func (b *Broker) masterTerms(ctx context.Context) []string {
	terms := []string{}
	topo, err := b.readTopology(ctx, b.client)
	if err != nil {
		return terms
	}
	nodes := b.client.Nodes()
	for _, addr := range topo.masters {
		c := nodes[addr]
		if c == nil {
			continue
		}
		info, err := c.Do(ctx, c.B().Info().Section("replication").Build()).ToString()
		if err != nil || !strings.Contains(info, "role:master") {
			continue
		}
		if id, ok := infoValue(info, "master_replid"); ok {
			terms = append(terms, id)
		}
	}
	return terms
}

// infoValue returns the value of a field of an INFO reply.
func infoValue(info, field string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
