//go:build unix

package outbox

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user plus system) the process has used,
// and false where it cannot tell.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
