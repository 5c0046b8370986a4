package testredis

import (
	"os"
	"os/exec"
	"syscall"
)

// freezeSignal and resumeSignal stop and continue a process (Freeze,
// Resume).
var freezeSignal, resumeSignal os.Signal = syscall.SIGSTOP, syscall.SIGCONT

// setDeathSignal makes the kernel kill the server if the test binary dies
// without running its cleanups (a panic in another goroutine, a timeout
// kill), so no redis-server outlives the tests.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
