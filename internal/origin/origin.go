// Package origin decides which browser origins may use a server's
// connection endpoints, so that a page on another site cannot use a
// visitor's browser to talk to the server (cross-site WebSocket hijacking,
// cross-origin event streams, DNS rebinding).
package origin

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Allowed reports whether r may be served. A request without an Origin
// header (not a browser) may. A browser's Origin must be a plain origin
// (http or https, a host, no user information, no path) and then be one of:
//   - in allowed ("*" allows any);
//   - the server's own origin: publicURL's (scheme, host and port) when it
//     is set, whatever the request's Host header says; otherwise the
//     request's own, its scheme (https when it came over TLS) and its Host.
//
// Schemes, hosts and default ports are compared as browsers write them:
// without case, and with ":80" for http and ":443" for https implied.
func Allowed(r *http.Request, allowed []string, publicURL string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	got, ok := Canonical(o)
	if !ok {
		return false
	}
	for _, a := range allowed {
		if a == "*" {
			return true
		}
		if want, ok := Canonical(a); ok && want == got {
			return true
		}
	}
	if publicURL != "" {
		want, ok := Canonical(publicURL)
		return ok && want == got
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	want, ok := Canonical(scheme + "://" + r.Host)
	return ok && want == got
}

// Canonical returns an origin (or a URL whose origin is meant: a trailing
// "/" is allowed) as scheme://host:port in lower case, and false when it is
// not a plain http or https origin.
func Canonical(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Host == "" || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		return "", false
	case port == "" && scheme == "http":
		port = "80"
	case port == "":
		port = "443"
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", false
	}
	return scheme + "://" + net.JoinHostPort(host, port), true
}
