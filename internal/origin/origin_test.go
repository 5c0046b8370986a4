package origin

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		name, origin, host string
		tls                bool
		allowed            []string
		public             string
		want               bool
	}{
		{"no origin", "", "chat.example.com", false, nil, "", true},
		{"own origin", "http://chat.example.com", "chat.example.com", false, nil, "", true},
		{"own origin, default port written", "http://chat.example.com:80", "chat.example.com", false, nil, "", true},
		{"own host, other scheme", "https://chat.example.com", "chat.example.com", false, nil, "", false},
		{"own origin over TLS", "https://chat.example.com", "chat.example.com", true, nil, "", true},
		{"own host, other port", "http://chat.example.com:8081", "chat.example.com:8080", false, nil, "", false},
		{"userinfo", "http://evil@chat.example.com", "chat.example.com", false, nil, "", false},
		{"a path", "http://chat.example.com/x", "chat.example.com", false, nil, "", false},
		{"not http", "file://chat.example.com", "chat.example.com", false, nil, "", false},
		{"null origin", "null", "chat.example.com", false, nil, "", false},
		{"listed", "https://app.example.com", "chat.example.com", false, []string{"https://APP.example.com/"}, "", true},
		{"any", "https://x.test", "chat.example.com", false, []string{"*"}, "", true},
		{"public url", "https://chat.example.com", "10.0.0.5:8080", false, nil, "https://chat.example.com", true},
		// DNS rebinding: the page's origin and the Host it sends agree,
		// but they are not the server's public origin.
		{"rebinding with a public url", "http://evil.test:8080", "evil.test:8080", false, nil, "https://chat.example.com", false},
		{"listed beside a public url", "https://app.example.com", "evil.test", false, []string{"https://app.example.com"}, "https://chat.example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tc.host+"/connection/websocket", nil)
			r.Host = tc.host
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if got := Allowed(r, tc.allowed, tc.public); got != tc.want {
				t.Errorf("Allowed(Origin %q, Host %q) = %v, want %v", tc.origin, tc.host, got, tc.want)
			}
		})
	}
}
