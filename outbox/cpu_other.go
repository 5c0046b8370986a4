//go:build !unix

package outbox

import "time"

// processCPU returns false: flush windows are not stretched here.
func processCPU() (time.Duration, bool) { return 0, false }
