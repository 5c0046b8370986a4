package redis

import (
	"context"
	"slices"
	"strings"
	"sync"

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
	live := b.terms.read(ctx, b.terms.begun(), b.masterTerms)
	retry := make([]rueidis.LuaExec, len(again))
	for j, i := range again {
		term, _ := termOf(res[i].Error())
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

// termReadings shares readings of the masters' terms (masterTerms: a
// topology read and an INFO of every master) among the calls that settle
// TERM errors at the same time. A slot migration moves many channels at
// once, and each publication or history read of them, from any
// goroutine, meets a TERM error: without sharing, each would read the
// whole Cluster.
//
// A reading vouches for a term only if it began after Redis answered with
// the TERM error: the keys had moved by then, so a master found still in
// the term was in it when they moved (replication IDs never come back).
// A reading that began earlier may predate the migration, and the master
// may have failed over since, its replica handing over keys that lack
// writes. So a caller takes what begun says when it has its errors, and
// read gives it a reading numbered after that: the latest one that ended,
// or the one under way, or its own. At most one reading is under way;
// callers who cannot use it wait for it to end, then share the next one.
type termReadings struct {
	mu      sync.Mutex
	n       uint64       // readings begun; each is numbered by n when it begins
	cur     *termReading // the reading under way, or nil
	last    *termReading // the latest reading that ended before its caller's ctx did
	waiting int          // callers waiting for cur to end (for tests)
}

// termReading is one reading of the masters' terms.
type termReading struct {
	n     uint64
	done  chan struct{} // closed when terms is set
	terms []string
	whole bool // ended before its caller's ctx did: shared by later callers
}

// begun returns how many readings have begun so far: read(after = begun())
// returns one that begins later.
func (r *termReadings) begun() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// read returns the terms of a reading numbered after after, made by
// readFn (under ctx) if none ended or is under way. It returns an empty
// list (every term renewed) if ctx ends while it waits for another
// caller's reading. It never returns nil.
func (r *termReadings) read(ctx context.Context, after uint64, readFn func(context.Context) []string) []string {
	for {
		r.mu.Lock()
		if l := r.last; l != nil && l.n > after {
			r.mu.Unlock()
			return l.terms
		}
		if c := r.cur; c != nil {
			r.waiting++
			r.mu.Unlock()
			var ended bool
			select {
			case <-c.done:
				ended = true
			case <-ctx.Done():
			}
			r.mu.Lock()
			r.waiting--
			r.mu.Unlock()
			switch {
			case !ended:
				return []string{}
			case c.n > after && c.whole:
				return c.terms
			}
			continue // too old, or cut short: the next one
		}
		r.n++
		c := &termReading{n: r.n, done: make(chan struct{})}
		r.cur = c
		r.mu.Unlock()
		c.terms = readFn(ctx)
		c.whole = ctx.Err() == nil
		r.mu.Lock()
		r.cur = nil
		if c.whole {
			r.last = c
		}
		r.mu.Unlock()
		close(c.done)
		return c.terms
	}
}

// masterTerms returns the replication IDs of the Cluster's masters, as a
// topology read now names them; a master that does not answer is left
// out (its terms are renewed). It never returns nil.
func (b *Broker) masterTerms(ctx context.Context) []string {
	if h := b.testHookTermReading; h != nil {
		h()
	}
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
