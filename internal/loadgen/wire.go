package loadgen

import (
	"bytes"
	"iter"
	"strconv"
)

// stamp is what a publication's text starts with; see the package
// documentation.
type stamp struct {
	measured  bool
	sent      int64 // publisher's clock, Unix nanoseconds
	publisher int
	seq       uint64
}

const (
	flagMeasured = 'm'
	flagWarm     = 'w'
)

// appendText appends the text of a publication: the stamp padded with 'x'
// to size bytes (or the stamp alone when it is longer).
func appendText(dst []byte, st stamp, size int) []byte {
	start := len(dst)
	flag := byte(flagWarm)
	if st.measured {
		flag = flagMeasured
	}
	dst = append(dst, flag)
	dst = strconv.AppendInt(dst, st.sent, 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, uint64(st.publisher), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, st.seq, 10)
	dst = append(dst, '.')
	for len(dst)-start < size {
		dst = append(dst, 'x')
	}
	return dst
}

// parseStamp reads the stamp at the start of text.
func parseStamp(text []byte) (stamp, bool) {
	var st stamp
	if len(text) == 0 || (text[0] != flagMeasured && text[0] != flagWarm) {
		return st, false
	}
	st.measured = text[0] == flagMeasured
	rest := text[1:]
	sent, rest, ok := parseUint(rest, '.')
	if !ok || sent > 1<<62 {
		return st, false
	}
	pub, rest, ok := parseUint(rest, '.')
	if !ok || pub > 1<<20 {
		return st, false
	}
	seq, _, ok := parseUint(rest, '.')
	if !ok {
		return st, false
	}
	st.sent, st.publisher, st.seq = int64(sent), int(pub), seq
	return st, true
}

// parseUint reads decimal digits up to end and returns the number and what
// follows end.
func parseUint(b []byte, end byte) (uint64, []byte, bool) {
	var n uint64
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if i >= 19 {
				return 0, nil, false
			}
			n = n*10 + uint64(c-'0')
		case c == end && i > 0:
			return n, b[i+1:], true
		default:
			return 0, nil, false
		}
	}
	return 0, nil, false
}

// Markers of the lines a full-protocol subscriber looks for.
var (
	pubPrefix   = []byte(`{"push":"publication"`)
	replyPrefix = []byte(`{"id":`)
	offsetKey   = []byte(`"offset":`)
	textKey     = []byte(`"text":"`)
	errorKey    = []byte(`"error":{"code":`)
)

// publicationHead is how the server's publication push of channel ch starts,
// up to the offset's digits.
func publicationHead(ch string) []byte {
	return []byte(`{"push":"publication","channel":"` + ch + `","pub":{"offset":`)
}

// parsePublication finds the offset and the text of a publication push
// line without decoding its JSON. A line that starts with head (from
// publicationHead) has the offset right after it; any other is searched
// for it. The data's "text" is the first one after the offset (channel
// names cannot hold quotes).
func parsePublication(line, head []byte) (offset uint64, text []byte, ok bool) {
	var rest []byte
	if len(head) > 0 && bytes.HasPrefix(line, head) {
		rest = line[len(head):]
	} else {
		i := bytes.Index(line, offsetKey)
		if i < 0 {
			return 0, nil, false
		}
		rest = line[i+len(offsetKey):]
	}
	var n int
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		offset = offset*10 + uint64(rest[n]-'0')
		n++
	}
	if n == 0 || n > 19 {
		return 0, nil, false
	}
	rest = rest[n:]
	j := bytes.Index(rest, textKey)
	if j < 0 {
		return 0, nil, false
	}
	return offset, rest[j+len(textKey):], true
}

// parseReply reads the id of a reply line and, for an error reply, its
// code (0 for a result).
func parseReply(line []byte) (id uint32, code int, ok bool) {
	if !bytes.HasPrefix(line, replyPrefix) {
		return 0, 0, false
	}
	n, rest, ok := parseUint(line[len(replyPrefix):], ',')
	if !ok || n > 1<<32-1 {
		return 0, 0, false
	}
	if bytes.HasPrefix(rest, errorKey) {
		code := 0
		for _, c := range rest[len(errorKey):] {
			if c < '0' || c > '9' || code > 1<<20 {
				break
			}
			code = code*10 + int(c-'0')
		}
		return uint32(n), max(code, 1), true
	}
	return uint32(n), 0, true
}

// lines yields the lines of a full-protocol frame (messages joined by '\n').
func lines(frame []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if len(line) > 0 && !yield(line) {
				return
			}
		}
	}
}
