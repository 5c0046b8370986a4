package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/centrifugal/fdelta"

	"github.com/redcast/redcast/protocol"
)

// ErrDelta is returned by ApplyDelta for a delta that does not apply to the
// data it is given: malformed, from other data (its checksum does not
// match), or producing more than the limit or something that is not JSON. A
// Session that meets one reconnects and recovers.
var ErrDelta = errors.New("client: delta publication does not apply")

// maxDeltaOutput bounds the data a delta may produce (a publication's data
// is at most the server's --max-data-size, 16 KiB by default).
const maxDeltaOutput = DefaultMaxMessageSize

// ApplyDelta returns the data of a delta publication (Publication.Delta):
// delta is its data, a JSON string holding a Fossil delta, and prev the
// data of the publication before it, as received (whole, or as an earlier
// ApplyDelta returned it). A Session applies deltas itself; ApplyDelta is
// for the pushes of a Client's own subscriptions.
func ApplyDelta(prev, delta []byte) (json.RawMessage, error) {
	var d string
	if err := json.Unmarshal(delta, &d); err != nil {
		return nil, fmt.Errorf("%w: data is not a JSON string", ErrDelta)
	}
	n, err := fdelta.OutputSize([]byte(d))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDelta, err)
	}
	if n > maxDeltaOutput {
		return nil, fmt.Errorf("%w: it makes %d bytes", ErrDelta, n)
	}
	out, err := fdelta.Apply(prev, []byte(d))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDelta, err)
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("%w: the result is not JSON", ErrDelta)
	}
	return out, nil
}

// deltaParam is SubscribeParams.Delta for a subscription that asks for
// deltas or not.
func deltaParam(delta bool) string {
	if delta {
		return protocol.DeltaFossil
	}
	return ""
}

// whole returns pub with its data whole: pub itself, or, for a delta, a
// copy with the delta applied to the previous publication's data. An error
// ends the connection: the session reconnects and recovers, and the server
// sends whole data again. sub.s.mu is held.
func (sub *Subscription) whole(pub *protocol.Publication) (*protocol.Publication, error) {
	if !pub.Delta {
		return pub, nil
	}
	if sub.prevData == nil {
		return nil, fmt.Errorf("%w: %s: delta at offset %d without a publication before it", ErrDelta, sub.channel, pub.Offset)
	}
	data, err := ApplyDelta(sub.prevData, pub.Data)
	if err != nil {
		return nil, fmt.Errorf("%s at offset %d: %w", sub.channel, pub.Offset, err)
	}
	w := *pub
	w.Data, w.Delta = data, false
	return &w, nil
}
