package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redcast/redcast/auth"
)

const tokenSecret = "0123456789abcdef0123456789abcdef"

func TestRunTokenMints(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{HMACSecret: []byte(tokenSecret), Audience: "redcast"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDCAST_TOKEN_SECRET": tokenSecret}
	getenv := func(k string) string { return env[k] }
	mint := func(args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if err := runToken(args, getenv, &out, &errOut); err != nil {
			t.Fatalf("runToken %q: %v (%s)", args, err, errOut.String())
		}
		if !strings.HasSuffix(out.String(), "\n") || strings.Count(out.String(), "\n") != 1 {
			t.Fatalf("output %q is not one line", out.String())
		}
		return strings.TrimSpace(out.String())
	}

	creds, err := v.VerifyConnect(mint("--user", "alice", "--ttl", "10m", "--info", `{"name":"Alice"}`,
		"--channels", "private:a, private:b", "--audience", "redcast", "--jti", "j-7"))
	if err != nil {
		t.Fatal(err)
	}
	if creds.User != "alice" || string(creds.Info) != `{"name":"Alice"}` || !slices.Equal(creds.Channels, []string{"private:a", "private:b"}) || creds.TokenID != "j-7" {
		t.Errorf("creds = %+v", creds)
	}
	if d := time.Until(creds.ExpiresAt); d > 10*time.Minute || d < 9*time.Minute {
		t.Errorf("token expires in %v, want 10m", d)
	}

	// --secret wins over the environment.
	env["REDCAST_TOKEN_SECRET"] = "another secret of thirty-two byte"
	if _, err := v.VerifyConnect(mint("--user", "bob", "--secret", tokenSecret, "--audience", "redcast")); err != nil {
		t.Errorf("token minted with --secret: %v", err)
	}
	env["REDCAST_TOKEN_SECRET"] = tokenSecret
	if err := v.VerifySubscribe(mint("--user", "bob", "--channel", "private:x", "--audience", "redcast"), "bob", "private:x"); err != nil {
		t.Errorf("subscription token: %v", err)
	}
}

func TestRunTokenHelp(t *testing.T) {
	var out, errOut strings.Builder
	if err := runToken([]string{"--help"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if out.Len() != 0 || !strings.Contains(errOut.String(), "Usage: redcast token") || !strings.Contains(errOut.String(), "REDCAST_TOKEN_SECRET") {
		t.Errorf("--help printed %q to stdout and %q to stderr", out.String(), errOut.String())
	}
}

func TestRunTokenRefuses(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		secret string // REDCAST_TOKEN_SECRET
		want   string
	}{
		{[]string{}, tokenSecret, "--user is required"},
		{[]string{"--user", "a"}, "", "--secret or REDCAST_TOKEN_SECRET is required"},
		{[]string{"--user", "a", "--secret", "short"}, "", "at least 32 needed"},
		{[]string{"--user", "a"}, "short", "at least 32 needed"},
		{[]string{"--user", "a", "--ttl", "0s"}, tokenSecret, "--ttl must be positive"},
		{[]string{"--user", "a", "--ttl", "soon"}, tokenSecret, `invalid value "soon" for flag -ttl`},
		{[]string{"--user", "a", "--info", "Alice"}, tokenSecret, "info: not valid JSON"},
		{[]string{"--user", "a", "--info", `["Alice"]`}, tokenSecret, "info: not a JSON object"},
		{[]string{"--user", "a", "--channels", "ok,not ok"}, tokenSecret, "channels:"},
		{[]string{"--user", "a", "--channel", "x", "--info", "{}"}, tokenSecret, "carries no Info or Channels"},
		{[]string{"--user", "a", "extra"}, tokenSecret, `unexpected argument "extra"`},
		{[]string{"--nope"}, tokenSecret, "flag provided but not defined: -nope"},
	} {
		var out, errOut strings.Builder
		err := runToken(tc.args, func(string) string { return tc.secret }, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("runToken %q = %v, want an error about %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("runToken %q printed %q", tc.args, out.String())
		}
	}
}
