//go:build !linux

package testredis

import "os/exec"

// setDeathSignal does nothing where the kernel offers no parent-death
// signal; t.Cleanup still kills the server when the test ends.
func setDeathSignal(*exec.Cmd) {}
