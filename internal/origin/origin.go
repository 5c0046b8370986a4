// Package origin decides which browser origins may use a server's
// connection endpoints, so that a page on another site cannot use a
// visitor's browser to talk to the server (cross-site WebSocket hijacking,
// cross-origin event streams).
package origin

import (
	"net/http"
	"net/url"
	"strings"
)

// Allowed reports whether r may be served: it has no Origin header (not a
// browser), its Origin is the request's own host, or its Origin is in
// allowed (scheme://host[:port], compared without case and trailing slash;
// "*" allows any).
func Allowed(r *http.Request, allowed []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), o) {
			return true
		}
	}
	return false
}
