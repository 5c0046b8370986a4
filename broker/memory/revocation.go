package memory

import (
	"context"
	"sync"
	"time"

	"github.com/redcast/redcast/broker"
)

var (
	_ broker.RevocationStore = (*Revocations)(nil)
	_ broker.RevocationStore = (*Broker)(nil)
)

// Revocations is a broker.RevocationStore in memory, for one node. The zero
// value is ready to use; Broker embeds one. Entries past their until are
// dropped when looked at, and all expired ones whenever the store has
// doubled since it was last swept, so it holds at most about twice what is
// live.
type Revocations struct {
	mu        sync.Mutex
	tokens    map[string]time.Time // jti → until (zero: forever)
	before    map[string]userCut   // user → its invalidation
	blocked   map[string]struct{}
	sweptSize int // entries after the last sweep
}

// userCut revokes a user's tokens issued before before, until until.
type userCut struct {
	before, until time.Time
}

// NewRevocations returns an empty store.
func NewRevocations() *Revocations { return &Revocations{} }

// live reports whether an entry kept until until (zero: forever) is still
// kept at now. Presence entries use it too.
func live(until, now time.Time) bool { return until.IsZero() || until.After(now) }

// later returns the later of two untils, zero (forever) being the latest.
func later(a, b time.Time) time.Time {
	if a.IsZero() || b.IsZero() {
		return time.Time{}
	}
	if a.After(b) {
		return a
	}
	return b
}

// update runs f under the lock, with the time, unless ctx is done or
// until (zero: never) is past; then it sweeps if the store grew.
func (r *Revocations) update(ctx context.Context, until time.Time, f func(now time.Time)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if live(until, now) {
		f(now)
		r.sweepIfGrownLocked(now)
	}
	return nil
}

// RevokeToken implements broker.RevocationStore.
func (r *Revocations) RevokeToken(ctx context.Context, jti string, until time.Time) error {
	return r.update(ctx, until, func(time.Time) {
		if r.tokens == nil {
			r.tokens = make(map[string]time.Time)
		}
		if old, ok := r.tokens[jti]; ok {
			until = later(old, until) // never shorten its life
		}
		r.tokens[jti] = until
	})
}

// InvalidateUserTokens implements broker.RevocationStore.
func (r *Revocations) InvalidateUserTokens(ctx context.Context, user string, issuedBefore, until time.Time) error {
	return r.update(ctx, until, func(now time.Time) {
		if r.before == nil {
			r.before = make(map[string]userCut)
		}
		cut := userCut{before: issuedBefore.Truncate(time.Millisecond), until: until}
		if old, ok := r.before[user]; ok && live(old.until, now) {
			if old.before.After(cut.before) {
				cut.before = old.before
			}
			cut.until = later(old.until, cut.until)
		}
		r.before[user] = cut
	})
}

// BlockUser implements broker.RevocationStore.
func (r *Revocations) BlockUser(ctx context.Context, user string) error {
	return r.update(ctx, time.Time{}, func(time.Time) {
		if r.blocked == nil {
			r.blocked = make(map[string]struct{})
		}
		r.blocked[user] = struct{}{}
	})
}

// UnblockUser implements broker.RevocationStore.
func (r *Revocations) UnblockUser(ctx context.Context, user string) error {
	return r.update(ctx, time.Time{}, func(time.Time) { delete(r.blocked, user) })
}

// TokenStatus implements broker.RevocationStore.
func (r *Revocations) TokenStatus(ctx context.Context, user, jti string) (broker.TokenStatus, error) {
	if err := ctx.Err(); err != nil {
		return broker.TokenStatus{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var st broker.TokenStatus
	if jti != "" {
		if until, ok := r.tokens[jti]; ok {
			if st.Revoked = live(until, now); !st.Revoked {
				delete(r.tokens, jti)
			}
		}
	}
	if user != "" {
		_, st.Blocked = r.blocked[user]
		if cut, ok := r.before[user]; ok {
			if live(cut.until, now) {
				st.IssuedBefore = cut.before
			} else {
				delete(r.before, user)
			}
		}
	}
	return st, nil
}

// sweepIfGrownLocked drops expired entries once the store holds twice as
// many as after the last sweep (and at least 64), so that sweeping costs
// O(1) per entry added.
func (r *Revocations) sweepIfGrownLocked(now time.Time) {
	size := len(r.tokens) + len(r.before)
	if size < max(64, 2*r.sweptSize) {
		return
	}
	for jti, until := range r.tokens {
		if !live(until, now) {
			delete(r.tokens, jti)
		}
	}
	for user, cut := range r.before {
		if !live(cut.until, now) {
			delete(r.before, user)
		}
	}
	r.sweptSize = len(r.tokens) + len(r.before)
}
