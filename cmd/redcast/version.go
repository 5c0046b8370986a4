package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/redcast/redcast"
)

// runVersion is "redcast version": it prints the version. It takes no
// arguments, so that a mistyped command line is not taken for a success.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: redcast version\n\nPrints the version of redcast.\n")
	}
	if help, err := parseArgs(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	_, err := fmt.Fprintln(stdout, "redcast", redcast.Version)
	return err
}
