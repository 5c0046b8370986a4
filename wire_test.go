package redcast

import (
	"errors"
	"testing"

	"github.com/redcast/redcast/auth"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// TestWantsDelta: deltas only for the full protocol, only where the
// namespace allows them, only in Fossil's format.
func TestWantsDelta(t *testing.T) {
	allow := auth.Namespace{AllowDelta: true}
	fossil := protocol.SubscribeParams{Channel: "c", Delta: protocol.DeltaFossil}
	for _, tc := range []struct {
		name   string
		format hub.Format
		p      protocol.SubscribeParams
		ns     auth.Namespace
		want   bool
		err    error
	}{
		{"asked and allowed", hub.FormatProtocol, fossil, allow, true, nil},
		{"not asked", hub.FormatProtocol, protocol.SubscribeParams{Channel: "c"}, allow, false, nil},
		{"not allowed", hub.FormatProtocol, fossil, auth.Namespace{}, false, nil},
		{"plain room", hub.FormatPlain, fossil, allow, false, nil},
		{"another format", hub.FormatProtocol, protocol.SubscribeParams{Channel: "c", Delta: "json-patch"}, allow, false, protocol.ErrBadRequest},
	} {
		c := &Client{format: tc.format}
		got, err := c.wantsDelta(tc.p, tc.ns)
		if got != tc.want || (err == nil) != (tc.err == nil) || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}
