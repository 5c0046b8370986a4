package test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jsDir holds the Node.js scripts and their npm packages (ws, fossil-delta):
// independent implementations that the server is checked against.
const jsDir = "testdata/js"

// runNode runs a script of jsDir with env and returns the JSON lines it
// printed, failing the test when it fails.
func runNode(t *testing.T, script string, env ...string) []map[string]any {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "ws")); err != nil {
		t.Fatalf("the npm packages are not installed: run npm ci in test/%s (scripts/test does)", jsDir)
	}
	// delta.mjs takes 8s alone and up to 27s on a 2-core machine running
	// two test suites; a script that hangs still fails, and says where.
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	// SIGTERM first, so that a script can say on stderr where it was.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s printed %q: %v", script, sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}
