package chaos

import (
	"os/exec"
	"syscall"
)

// setDeathSignal kills the child when chaos dies, so no process outlives it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
