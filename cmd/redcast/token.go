package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/redcast/redcast/auth"
)

// runToken implements `redcast token`: it mints an HS256 development token
// (a connection token, or with --channel a subscription token) and prints
// it. The secret comes from --secret or REDCAST_TOKEN_SECRET.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redcast token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		user     = fs.String("user", "", "user id, the sub claim (required)")
		secret   = fs.String("secret", "", "HMAC secret, at least 32 bytes (default $REDCAST_TOKEN_SECRET)")
		ttl      = fs.Duration("ttl", auth.DefaultTokenTTL, "how long the token is valid")
		info     = fs.String("info", "", `info claim, a JSON object shown to other clients, e.g. '{"name":"Alice"}'`)
		channels = fs.String("channels", "", "comma-separated channels the user may subscribe to without a subscription token")
		channel  = fs.String("channel", "", "mint a subscription token for this private channel instead of a connection token")
		audience = fs.String("audience", "", "aud claim")
		issuer   = fs.String("issuer", "", "iss claim")
		jti      = fs.String("jti", "", "jti claim: the id /api/revoke_token revokes the token by")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: redcast token --user USER [flags]\n\n"+
			"Mints an HS256 token for development and tests; in production the application's backend mints tokens.\n"+
			"The secret is --secret or the environment variable REDCAST_TOKEN_SECRET.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	if *user == "" {
		return errors.New("token: --user is required")
	}
	key := *secret
	if key == "" {
		key = getenv("REDCAST_TOKEN_SECRET")
	}
	if key == "" {
		return errors.New("token: --secret or REDCAST_TOKEN_SECRET is required")
	}
	if *ttl <= 0 {
		return fmt.Errorf("token: --ttl must be positive, got %v", *ttl)
	}
	opts := auth.MintOptions{User: *user, TTL: *ttl, Channel: *channel, Audience: *audience, Issuer: *issuer, ID: *jti}
	if *info != "" {
		opts.Info = []byte(*info)
	}
	for _, ch := range strings.Split(*channels, ",") {
		if ch = strings.TrimSpace(ch); ch != "" {
			opts.Channels = append(opts.Channels, ch)
		}
	}
	token, err := auth.Mint([]byte(key), opts)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
