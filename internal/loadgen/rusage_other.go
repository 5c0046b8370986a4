//go:build !unix

package loadgen

import "time"

// selfCPU is unknown on this system: the report shows no CPU time.
func selfCPU() time.Duration { return 0 }
