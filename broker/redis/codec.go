package redis

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/redcast/redcast/protocol"
)

// What travels through Redis is binary, not JSON: data must come back byte
// for byte (a JSON encoder would compact or HTML-escape it), and a
// length-prefixed layout is cheaper to write and read.
//
// A publication body (in the stream entry's "d" field and at the end of a
// pub/sub message) is
//
//	version (1 byte) | flags (1 byte) | uvarint time (Unix ms)
//	[ if flags&hasFrom: client info, length-prefixed ]
//	[ if flags&hasPublisher: the publishing connection's id, length-prefixed ]
//	data (the rest)
//
// A client info is
//
//	uvarint len | client | uvarint len | user | info (the rest)
//
// and, inside a body, is itself preceded by its uvarint length.
//
// Pub/sub messages start with a type byte:
//
//	'p' offset ':' epoch ':' body   a publication (prefix written by the Lua script)
//	'j' client info                  a join
//	'l' client info                  a leave
const (
	bodyVersion  = 1
	hasFrom      = 1 << 0
	hasPublisher = 1 << 1

	msgPublication = 'p'
	msgJoin        = 'j'
	msgLeave       = 'l'
)

var errMalformed = errors.New("redis: malformed message")

// encodeBody returns the body of a publication.
func encodeBody(timeMs int64, from *protocol.ClientInfo, publisher string, data []byte) string {
	n := 2 + binary.MaxVarintLen64 + len(data)
	if from != nil {
		n += binary.MaxVarintLen64 + infoLen(from)
	}
	if publisher != "" {
		n += binary.MaxVarintLen64 + len(publisher)
	}
	b := make([]byte, 0, n)
	var flags byte
	if from != nil {
		flags |= hasFrom
	}
	if publisher != "" {
		flags |= hasPublisher
	}
	b = append(b, bodyVersion, flags)
	b = binary.AppendUvarint(b, uint64(timeMs))
	if from != nil {
		b = binary.AppendUvarint(b, uint64(infoLen(from)))
		b = appendInfo(b, from)
	}
	if publisher != "" {
		b = binary.AppendUvarint(b, uint64(len(publisher)))
		b = append(b, publisher...)
	}
	b = append(b, data...)
	return string(b)
}

// decodeBody returns the publication a body holds, without its offset.
func decodeBody(body string) (*protocol.Publication, error) {
	if len(body) < 2 || body[0] != bodyVersion {
		return nil, errMalformed
	}
	flags := body[1]
	rest := body[2:]
	t, rest, ok := uvarint(rest)
	if !ok {
		return nil, errMalformed
	}
	pub := &protocol.Publication{Time: int64(t)}
	if flags&hasFrom != 0 {
		var info string
		if info, rest, ok = field(rest); !ok {
			return nil, errMalformed
		}
		from, err := decodeInfo(info)
		if err != nil {
			return nil, err
		}
		pub.From = from
	}
	if flags&hasPublisher != 0 {
		if pub.Publisher, rest, ok = field(rest); !ok {
			return nil, errMalformed
		}
	}
	pub.Data = []byte(rest)
	return pub, nil
}

// infoLen returns the length of the encoding of info.
func infoLen(info *protocol.ClientInfo) int {
	return uvarintLen(len(info.Client)) + len(info.Client) + uvarintLen(len(info.User)) + len(info.User) + len(info.Info)
}

// appendInfo appends the encoding of info to b.
func appendInfo(b []byte, info *protocol.ClientInfo) []byte {
	b = binary.AppendUvarint(b, uint64(len(info.Client)))
	b = append(b, info.Client...)
	b = binary.AppendUvarint(b, uint64(len(info.User)))
	b = append(b, info.User...)
	return append(b, info.Info...)
}

// uvarintLen returns how many bytes the uvarint encoding of n takes.
func uvarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// encodeInfo returns the encoding of info, for presence and join/leave.
func encodeInfo(info *protocol.ClientInfo) string {
	return string(appendInfo(make([]byte, 0, infoLen(info)), info))
}

// decodeInfo reads what encodeInfo wrote.
func decodeInfo(s string) (*protocol.ClientInfo, error) {
	client, rest, ok := field(s)
	if !ok {
		return nil, errMalformed
	}
	user, rest, ok := field(rest)
	if !ok {
		return nil, errMalformed
	}
	info := &protocol.ClientInfo{Client: client, User: user}
	if rest != "" {
		info.Info = []byte(rest)
	}
	return info, nil
}

// encodePresenceMessage returns the pub/sub message of a join or leave.
func encodePresenceMessage(kind byte, info *protocol.ClientInfo) string {
	b := make([]byte, 0, 1+infoLen(info))
	b = append(b, kind)
	return string(appendInfo(b, info))
}

// parsePublicationMessage splits a publication message (after its type
// byte) into its position and body.
func parsePublicationMessage(s string) (pos protocol.StreamPosition, body string, err error) {
	off, rest, ok := strings.Cut(s, ":")
	if !ok {
		return pos, "", errMalformed
	}
	epoch, body, ok := strings.Cut(rest, ":")
	if !ok || epoch == "" {
		return pos, "", errMalformed
	}
	o, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return pos, "", errMalformed
	}
	return protocol.StreamPosition{Offset: o, Epoch: epoch}, body, nil
}

// uvarint reads a uvarint from the front of s.
func uvarint(s string) (uint64, string, bool) {
	var v uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return v | uint64(c)<<shift, s[i+1:], true
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, s, false
}

// field reads a uvarint-length-prefixed string from the front of s.
func field(s string) (string, string, bool) {
	n, rest, ok := uvarint(s)
	if !ok || n > uint64(len(rest)) {
		return "", s, false
	}
	return rest[:n], rest[n:], true
}
