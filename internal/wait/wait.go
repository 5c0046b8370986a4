// Package wait is the one polling helper of the tests: wait for a
// condition with a deadline instead of sleeping.
package wait

import (
	"testing"
	"time"
)

// Timeout is how long For waits: long enough for a loaded CI machine.
const Timeout = 10 * time.Second

// For polls cond every millisecond until it holds, and fails tb (naming
// what it waited for) when Timeout passes first.
func For(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, Timeout, what, cond)
}

// Within is For with a timeout of its own, for the test packages that
// wait longer (their processes, Redis servers and browsers).
func Within(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
