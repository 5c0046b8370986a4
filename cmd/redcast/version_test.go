package main

import (
	"runtime"
	"testing"

	"github.com/redcast/redcast"
)

// TestVersionStamped: the version and commit the release build stamps
// with -ldflags -X (scripts/image) are what "redcast version" prints.
func TestVersionStamped(t *testing.T) {
	t.Cleanup(func() { version, commit = "", "" })
	version, commit = "1.2.3", "0123456789abcdef0123456789abcdef01234567-dirty"
	want := "redcast 1.2.3 (commit 0123456789abcdef0123456789abcdef01234567-dirty, " + runtime.Version() + ")"
	if got := versionLine(); got != want {
		t.Errorf("versionLine() = %q, want %q", got, want)
	}
	version, commit = "", ""
	if v, _ := buildVersion(); v != redcast.Version {
		t.Errorf("unstamped version %q, want redcast.Version %q", v, redcast.Version)
	}
}
