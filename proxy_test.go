package redcast

import (
	"testing"

	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/proxy"
)

// TestBackendDisconnectCodes: a backend's disconnect keeps its code when
// it is the application's (4000-4999); any other code, redcast's own
// 3000-3999 included, becomes 3504, so that a backend cannot pass for a
// close of redcast's (3510 token revoked, say).
func TestBackendDisconnectCodes(t *testing.T) {
	for code, want := range map[uint32]uint16{4000: 4000, 4999: 4999, 3510: 3504, 3999: 3504, 1000: 3504, 5000: 3504} {
		err, label := backendError(&proxy.Disconnect{Code: code, Reason: "r"})
		d, ok := err.(protocol.Disconnect)
		if !ok || d.Code != want || label != "disconnect" {
			t.Errorf("backend disconnect %d: %v (%s), want code %d", code, err, label, want)
		}
	}
}
