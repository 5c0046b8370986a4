// Command healthcheck is the HEALTHCHECK of the redcast container image,
// which has no shell and no curl: it asks the node in the same container
// for /healthz and exits 0 when it answers 200, 1 otherwise.
//
//	healthcheck [URL]
//
// Without URL it asks http://127.0.0.1:PORT/healthz, PORT taken from
// REDCAST_ADDR (8080 when unset), over https when REDCAST_TLS_CERT is set
// (without verifying the certificate, which names the public host, not
// 127.0.0.1).
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// timeout bounds the whole check; the image's HEALTHCHECK allows 3s.
const timeout = 2 * time.Second

func main() {
	url := defaultURL(os.Getenv)
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if err := check(url); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// defaultURL is the /healthz of the node configured by the environment.
func defaultURL(getenv func(string) string) string {
	port := "8080"
	if _, p, err := net.SplitHostPort(getenv("REDCAST_ADDR")); err == nil && p != "" {
		port = p
	}
	scheme := "http"
	if getenv("REDCAST_TLS_CERT") != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort("127.0.0.1", port) + "/healthz"
}

// check returns nil when GET url answers 200 within timeout.
func check(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		// The node's own certificate, asked for on loopback.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
