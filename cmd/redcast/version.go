package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/redcast/redcast"
)

// version and commit are stamped by the release build (scripts/image):
//
//	go build -ldflags "-X main.version=1.2.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/redcast
//
// Left empty, the version is redcast.Version and the commit is the one the
// go command recorded in the binary (vcs.revision), when it recorded one.
var version, commit string

// buildVersion returns the version and the commit of this binary; commit
// is empty when it is unknown, and ends in "-dirty" for a build of a
// checkout with uncommitted changes.
func buildVersion() (v, c string) {
	v, c = version, commit
	if v == "" {
		v = redcast.Version
	}
	if c != "" {
		return v, c
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v, ""
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			c = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if c != "" && dirty {
		c += "-dirty"
	}
	return v, c
}

// versionLine is what "redcast version" prints: "redcast 1.2.0 (commit
// 0123…, go1.26.8)", without the commit when it is unknown.
func versionLine() string {
	v, c := buildVersion()
	if c == "" {
		return fmt.Sprintf("redcast %s (%s)", v, runtime.Version())
	}
	return fmt.Sprintf("redcast %s (commit %s, %s)", v, c, runtime.Version())
}

// runVersion is "redcast version": it prints the version. It takes no
// arguments, so that a mistyped command line is not taken for a success.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: redcast version\n\nPrints the version of redcast, the commit it was built from (when known) and the Go release.\n")
	}
	if help, err := parseArgs(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	_, err := fmt.Fprintln(stdout, versionLine())
	return err
}
