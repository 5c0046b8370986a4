package client

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnect delays: exponential with full jitter.
type backoff struct {
	base, max time.Duration
	attempt   int
}

// next returns the delay before the next attempt, a random duration
// between 0 and min(max, base·2^attempt), and counts the attempt.
func (b *backoff) next() time.Duration {
	ceil := b.max
	if b.attempt < 32 {
		if d := b.base << b.attempt; d > 0 && d < ceil {
			ceil = d
		}
	}
	b.attempt++
	return rand.N(ceil + 1)
}

// reset starts counting attempts again.
func (b *backoff) reset() { b.attempt = 0 }
