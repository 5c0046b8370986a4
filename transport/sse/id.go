package sse

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"

	"github.com/redcast/redcast/protocol"
)

// An event id (the SSE id field, sent back by the browser as Last-Event-ID)
// names the position of every recoverable channel of a stream, so that a
// reconnect can recover them all from the one id EventSource keeps. It is
// base64url without padding of:
//
//	version byte (idVersion)
//	then per channel:
//	  key     4 bytes, big endian: FNV-1a 32 of the channel name
//	  offset  uvarint
//	  epoch   uvarint length (at most MaxEpochLength), then the bytes
//
// Channels are named by a hash rather than by name because the request
// already lists the names: this keeps an id of 128 channels with the
// brokers' 8-byte epochs under 4 KB. A reconnect may list other channels; a
// position applies to the requested channel with its key, and two
// requested channels with the same key get none.
const idVersion = 1

const (
	// MaxEpochLength is the longest epoch an id carries; a channel whose
	// broker uses longer epochs is left out of ids and never recovered.
	MaxEpochLength = 32
	// MaxIDChannels is how many channels an id carries at most: the first
	// ones of the stream; channels past them are not recovered.
	MaxIDChannels = 128
	// maxEntrySize is the largest encoded entry: key, offset, epoch.
	maxEntrySize = 4 + binary.MaxVarintLen64 + 1 + MaxEpochLength
	// MaxIDLength is the longest id the server sends or accepts, in bytes
	// of base64 text.
	MaxIDLength = (1+MaxIDChannels*maxEntrySize)*4/3 + 4
)

// errBadID is returned for an id the decoder does not accept.
var errBadID = errors.New("sse: malformed event id")

// channelKey is the key that names ch in an id.
func channelKey(ch string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ch)) // cannot fail
	return h.Sum32()
}

// idEntry is one channel's position in an id.
type idEntry struct {
	key uint32
	pos protocol.StreamPosition
}

// appendID appends the id of entries to dst. Entries past MaxIDChannels and
// entries with an epoch longer than MaxEpochLength are left out.
func appendID(dst []byte, entries []idEntry) []byte {
	raw := make([]byte, 1, 1+len(entries)*(4+4+1+8))
	raw[0] = idVersion
	n := 0
	for _, e := range entries {
		if n == MaxIDChannels {
			break
		}
		if len(e.pos.Epoch) > MaxEpochLength {
			continue
		}
		raw = binary.BigEndian.AppendUint32(raw, e.key)
		raw = binary.AppendUvarint(raw, e.pos.Offset)
		raw = binary.AppendUvarint(raw, uint64(len(e.pos.Epoch)))
		raw = append(raw, e.pos.Epoch...)
		n++
	}
	return base64.RawURLEncoding.AppendEncode(dst, raw)
}

// decodeID returns the positions an id carries, by channel key. A key that
// appears twice is an error, as is anything but an id appendID could make.
func decodeID(id string) (map[uint32]protocol.StreamPosition, error) {
	if len(id) > MaxIDLength {
		return nil, errBadID
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 || raw[0] != idVersion {
		return nil, errBadID
	}
	raw = raw[1:]
	out := make(map[uint32]protocol.StreamPosition)
	for len(raw) > 0 {
		if len(out) == MaxIDChannels || len(raw) < 4 {
			return nil, errBadID
		}
		key := binary.BigEndian.Uint32(raw)
		raw = raw[4:]
		offset, n := binary.Uvarint(raw)
		if n <= 0 {
			return nil, errBadID
		}
		raw = raw[n:]
		size, n := binary.Uvarint(raw)
		if n <= 0 || size > MaxEpochLength || uint64(len(raw)-n) < size {
			return nil, errBadID
		}
		raw = raw[n:]
		if _, dup := out[key]; dup {
			return nil, errBadID
		}
		out[key] = protocol.StreamPosition{Offset: offset, Epoch: string(raw[:size])}
		raw = raw[size:]
	}
	return out, nil
}

// positions is a stream's view of its channels for building ids: the
// position of the last publication written per channel. It starts with the
// positions of the request's Last-Event-ID, so that an id written before
// every channel is subscribed again still carries what the client needs. It
// is used by the stream's writer only.
type positions struct {
	entries []idEntry      // in the order of the stream's channels
	index   map[string]int // channel -> index in entries, for known channels
	id      []byte         // the encoded id, nil when it must be made again
}

// newPositions returns the positions of a stream of channels, taken from
// since (channel -> position) where the request had one.
func newPositions(channels []string, since map[string]protocol.StreamPosition) *positions {
	p := &positions{index: make(map[string]int, len(channels))}
	for _, ch := range channels {
		if pos, ok := since[ch]; ok {
			p.set(ch, pos)
		}
	}
	return p
}

// set records ch's position.
func (p *positions) set(ch string, pos protocol.StreamPosition) {
	p.id = nil
	if i, ok := p.index[ch]; ok {
		p.entries[i].pos = pos
		return
	}
	p.index[ch] = len(p.entries)
	p.entries = append(p.entries, idEntry{key: channelKey(ch), pos: pos})
}

// forget leaves ch out of ids (a channel without history).
func (p *positions) forget(ch string) {
	i, ok := p.index[ch]
	if !ok {
		return
	}
	p.id = nil
	p.entries = append(p.entries[:i], p.entries[i+1:]...)
	delete(p.index, ch)
	for c, j := range p.index {
		if j > i {
			p.index[c] = j - 1
		}
	}
}

// advance records that the publication at offset of ch was written; ch's
// epoch does not change within a live subscription.
func (p *positions) advance(ch string, offset uint64) {
	if i, ok := p.index[ch]; ok {
		p.entries[i].pos.Offset = offset
		p.id = nil
	}
}

// ID returns the current id.
func (p *positions) ID() []byte {
	if p.id == nil {
		p.id = appendID(nil, p.entries)
	}
	return p.id
}

// sinceOf matches the positions of a decoded id to the channels of a
// request by key; a key shared by two requested channels names neither.
func sinceOf(channels []string, byKey map[uint32]protocol.StreamPosition) map[string]protocol.StreamPosition {
	if len(byKey) == 0 {
		return nil
	}
	owners := make(map[uint32]int, len(channels))
	for _, ch := range channels {
		owners[channelKey(ch)]++
	}
	out := make(map[string]protocol.StreamPosition)
	for _, ch := range channels {
		k := channelKey(ch)
		if pos, ok := byKey[k]; ok && owners[k] == 1 {
			out[ch] = pos
		}
	}
	return out
}
