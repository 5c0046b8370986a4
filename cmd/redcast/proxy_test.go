package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/redcast/redcast/auth"
)

func TestProxyFlags(t *testing.T) {
	parse := func(args ...string) (*proxyFlags, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		p := addProxyFlags(fs)
		return p, fs.Parse(args)
	}
	for _, tc := range []struct {
		args    []string
		fc      *auth.FileConfig
		wantErr string
		backend bool
	}{
		{args: nil},
		{args: []string{"--proxy-timeout", "2s"}},
		{args: []string{"--proxy-connect-url", "http://app/connect", "--proxy-headers", "Cookie, X-Real-Ip"}, backend: true},
		{args: []string{"--proxy-rpc-url", "ftp://app/rpc"}, wantErr: "--proxy-rpc-url"},
		{args: []string{"--proxy-publish-url", "app/publish"}, wantErr: "want an http or https URL"},
		{args: []string{"--proxy-refresh-url", "http://app/refresh"}, wantErr: "set both"},
		{args: []string{"--proxy-timeout", "1m"}, wantErr: "at most 30s"},
		{fc: &auth.FileConfig{Namespaces: map[string]auth.Namespace{"a": {PublishProxy: "https://app/p"}}}, backend: true},
		{fc: &auth.FileConfig{Namespaces: map[string]auth.Namespace{"a": {PublishProxy: auth.ProxyOff}}}},
	} {
		p, err := parse(tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := p.config(tc.fc)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.wantErr == "" && (cfg.Backend != nil) != tc.backend:
			t.Errorf("%v: backend %v, want %v", tc.args, cfg.Backend != nil, tc.backend)
		}
	}
}
