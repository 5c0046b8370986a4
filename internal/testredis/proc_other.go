//go:build !linux

package testredis

import (
	"os"
	"os/exec"
)

// freezeSignal and resumeSignal are nil: Freeze fails the test here.
var freezeSignal, resumeSignal os.Signal

// setDeathSignal does nothing where the kernel offers no parent-death
// signal; t.Cleanup still kills the server when the test ends.
func setDeathSignal(*exec.Cmd) {}
