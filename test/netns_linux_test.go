package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsEnv is set in a test binary that inNetns started in a network
// namespace of its own: the test to run, a space, and the namespace of
// the test that started it.
const netnsEnv = "REDCAST_TEST_NETNS"

// netnsTimeout bounds a test run in its own network namespace.
const netnsTimeout = 3 * time.Minute

// inNetns lets a test listen on fixed ports (a configuration file used as
// shipped names them) without colliding with the tests of other packages
// running at the same time or with anything else on the machine. Called
// first in a top-level test, it runs the test again in a new process of
// this test binary, in a new network namespace that only that process and
// its children see, and reports false once that run passed: the caller
// returns. In that run it brings the namespace's loopback up and reports
// true: the caller goes on. It needs root, or unprivileged user
// namespaces (then the run is root in a user namespace of its own).
func inNetns(t *testing.T) bool {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if name, parent, ok := strings.Cut(os.Getenv(netnsEnv), " "); ok && name == t.Name() {
		if self == parent {
			t.Fatalf("the run meant for a network namespace of its own is in %s, its parent's", self)
		}
		if err := loopbackUp(); err != nil {
			t.Fatalf("bring up the loopback of the new network namespace: %v", err)
		}
		return true
	}
	ctx, cancel := context.WithTimeout(t.Context(), netnsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1",
		"-test.timeout="+netnsTimeout.String())
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name()+" "+self, binaryEnv+"="+redcastBinary(t))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("the test in a network namespace of its own:\n%s", out.Bytes())
	switch {
	case err != nil && cmd.ProcessState == nil:
		t.Fatalf("cannot start a process in a new network namespace (root, or unprivileged user namespaces, needed): %v", err)
	case err != nil:
		t.Fatalf("the test in its own network namespace failed: %v", err)
	case !bytes.Contains(out.Bytes(), []byte(fmt.Sprintf("--- PASS: %s ", t.Name()))):
		t.Fatal("the test did not run in its own network namespace")
	}
	return false
}

// loopbackUp brings up the interface lo, which a new network namespace
// has down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
