package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseWithEnv(t *testing.T) {
	env := map[string]string{"REDCAST_ADDR": ":9999", "REDCAST_MAX_CHANNELS": "7"}
	var out strings.Builder
	// An unknown log format fails after flags are parsed, before serving.
	err := run(context.Background(), []string{"--max-channels", "3", "--log-format", "xml"},
		func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("run with a bad log format = %v", err)
	}
	env["REDCAST_MAX_FRAME_SIZE"] = "lots"
	err = run(context.Background(), nil, func(k string) string { return env[k] }, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "REDCAST_MAX_FRAME_SIZE") {
		t.Fatalf("run with a bad environment value = %v, want it named", err)
	}
	if err := run(context.Background(), []string{"nope"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("run accepted an unknown command")
	}
	out.Reset()
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &out); err != nil || !strings.HasPrefix(out.String(), "redcast ") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
}

// TestServeAndShutdown runs the server as main does, checks /healthz, and
// stops it by cancelling the context, as SIGTERM does.
func TestServeAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--log-format", "text"}, func(string) string { return "" }, io.Discard, pw)
		pw.Close()
	}()
	addrRE := regexp.MustCompile(`addr=(\S+)`)
	lines := bufio.NewScanner(pr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil && strings.Contains(lines.Text(), "serving") {
			addr = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		t.Fatalf("server never logged its address: %v", <-done)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}
