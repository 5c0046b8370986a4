package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redcast/redcast/protocol"
)

// Push types of the SSE stream besides those of the full protocol.
const (
	// PushConnect is the stream's first event: the connect result.
	PushConnect = "connect"
	// PushSubscribe says that a channel's subscription started, and
	// whether the publications since the Last-Event-ID were recovered.
	PushSubscribe = "subscribe"
)

// connectPush is the connect event's data.
type connectPush struct {
	Push string `json:"push"`
	*protocol.ConnectResult
}

// SubscribePush is the data of a subscribe event: the channel's position
// when its subscription started, as the subscribe reply of the full
// protocol gives it, and Since, the position the request asked to recover
// from (nil when it had none for the channel). The publications the reply
// would carry follow as publication events.
type SubscribePush struct {
	Push        string                   `json:"push"`
	Channel     string                   `json:"channel"`
	Offset      uint64                   `json:"offset"`
	Epoch       string                   `json:"epoch"`
	Recoverable bool                     `json:"recoverable"`
	Recovered   bool                     `json:"recovered"`
	Since       *protocol.StreamPosition `json:"since,omitempty"`
}

// eventWriter turns queued messages into SSE bytes in buf, keeping the
// channel positions that make each event's id. Every event carries the id,
// so that whatever event a client saw last names every channel's position.
type eventWriter struct {
	pos   *positions
	retry time.Duration // the reconnection delay to advise
	buf   []byte
}

// event appends one event with the current id and data (a JSON line).
func (ew *eventWriter) event(data []byte) {
	ew.buf = append(ew.buf, "id: "...)
	ew.buf = append(ew.buf, ew.pos.ID()...)
	ew.buf = append(ew.buf, '\n')
	ew.buf = appendData(ew.buf, data)
	ew.buf = append(ew.buf, '\n')
}

// appendData appends data as data fields, one per line of data: a JSON
// line has none, but a line break in data must not end the event.
func appendData(dst, data []byte) []byte {
	for {
		i := bytes.IndexAny(data, "\r\n")
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			return append(dst, '\n')
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++ // CRLF is one line break
		}
		data = data[i+1:]
	}
}

// line appends the event of a push line of the full protocol, advancing
// the channel's position when it is a publication.
func (ew *eventWriter) line(line []byte) {
	if ch, offset, ok := publicationHead(line); ok {
		ew.pos.advance(ch, offset)
	}
	ew.event(line)
}

// disconnect appends the final event, advising a reconnection delay of
// retry to 2 retry when the client should reconnect.
func (ew *eventWriter) disconnect(d protocol.Disconnect) {
	if d.Reconnect() {
		ew.buf = appendRetry(ew.buf, jitter(ew.retry))
	}
	ew.event(d.AppendPush(nil))
}

// encode is the JSON of one of the stream's own pushes, without HTML
// escaping, like the lines of the full protocol.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // plain structs: cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// pubPrefix and offsetPrefix frame the channel in a publication push as
// protocol.AppendPush writes it; channel names never need escaping.
var (
	pubPrefix    = []byte(`{"push":"publication","channel":"`)
	offsetPrefix = []byte(`","pub":{"offset":`)
	pushPrefix   = []byte(`{"push":"`)
)

// publicationHead returns the channel and offset of a publication push
// line, and false for any other line. It reads the few bytes before the
// data when the line has the field order protocol.AppendPush writes, and
// decodes the whole line otherwise.
func publicationHead(line []byte) (ch string, offset uint64, ok bool) {
	if rest, found := bytes.CutPrefix(line, pubPrefix); found {
		if i := bytes.IndexByte(rest, '"'); i > 0 {
			if num, found := bytes.CutPrefix(rest[i:], offsetPrefix); found {
				end := 0
				for end < len(num) && '0' <= num[end] && num[end] <= '9' {
					end++
				}
				if o, err := strconv.ParseUint(string(num[:end]), 10, 64); err == nil {
					return string(rest[:i]), o, true
				}
			}
		}
	} else if bytes.HasPrefix(line, pushPrefix) {
		return "", 0, false // another push type
	}
	var head struct {
		Push    string `json:"push"`
		Channel string `json:"channel"`
		Pub     *struct {
			Offset uint64 `json:"offset"`
		} `json:"pub"`
	}
	if json.Unmarshal(line, &head) != nil || head.Push != protocol.PushPublication || head.Pub == nil {
		return "", 0, false
	}
	return head.Channel, head.Pub.Offset, true
}
