package sse

import (
	"encoding/binary"

	"github.com/redcast/redcast/protocol"
)

// The stream's own events (its connect result, a channel's subscribe
// result) ride the client's outbox queue in order with the client's
// pushes, each as one message that carries everything its events need:
// ownTag, its kind, and its fields. No line of the core starts with
// ownTag (they are JSON), and nothing waits beside the queue: whatever
// happens to a message in the queue happens to its event, and to no other.
//
// A subscribe's fields are a flags byte (flagRecoverable), the uvarint
// offset its subscribe event's id names, then fields each a uvarint length
// and its bytes: the epoch, the channel, the subscribe event's data, and
// one publication push line per publication of the result.

// ownTag starts the queued message of an own event.
const ownTag = 0

// Kinds of own events, after ownTag.
const (
	ownConnect   = 'c' // then the connect event's data (JSON)
	ownSubscribe = 's' // then the fields of a subscribe
)

// flagRecoverable: the subscribed channel is recoverable, its position
// goes into ids.
const flagRecoverable = 1

// connectMessage returns the queued message of the connect event.
func connectMessage(res *protocol.ConnectResult) []byte {
	return append([]byte{ownTag, ownConnect}, encode(connectPush{Push: PushConnect, ConnectResult: res})...)
}

// subscribeMessage returns the queued message of a channel's subscribe
// result: a subscribe event followed by its publications. The id of the
// subscribe event names the position before the result's publications,
// so that a client that misses some of them recovers them.
func subscribeMessage(channel string, since *protocol.StreamPosition, res *protocol.SubscribeResult) []byte {
	start := res.Offset
	if len(res.Publications) > 0 {
		start = res.Publications[0].Offset - 1
	}
	var flags byte
	if res.Recoverable {
		flags |= flagRecoverable
	}
	dst := []byte{ownTag, ownSubscribe, flags}
	dst = binary.AppendUvarint(dst, start)
	dst = appendField(dst, []byte(res.Epoch))
	dst = appendField(dst, []byte(channel))
	dst = appendField(dst, encode(SubscribePush{
		Push:        PushSubscribe,
		Channel:     channel,
		Offset:      res.Offset,
		Epoch:       res.Epoch,
		Recoverable: res.Recoverable,
		Recovered:   res.Recovered,
		Since:       since,
	}))
	var line []byte
	for i := range res.Publications {
		var err error
		line, err = protocol.AppendPush(line[:0], &protocol.Push{Type: protocol.PushPublication, Channel: channel, Pub: &res.Publications[i]})
		if err != nil {
			continue // the broker's publications are valid JSON
		}
		dst = appendField(dst, line)
	}
	return dst
}

func appendField(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// fields reads what appendField appended.
type fields []byte

// next returns the next field, false at the end or on a field that does
// not fit.
func (f *fields) next() ([]byte, bool) {
	n, k := binary.Uvarint(*f)
	if k <= 0 || n > uint64(len(*f)-k) {
		return nil, false
	}
	b := (*f)[k : k+int(n)]
	*f = (*f)[k+int(n):]
	return b, true
}

// own appends the events of an own event's queued message (ownTag first):
// nothing of one this stream could not have queued.
func (ew *eventWriter) own(msg []byte) {
	if len(msg) < 2 || msg[0] != ownTag {
		return
	}
	switch body := msg[2:]; msg[1] {
	case ownConnect:
		ew.buf = appendRetry(ew.buf, ew.retry)
		ew.event(body)
	case ownSubscribe:
		ew.subscribed(body)
	}
}

// subscribed appends a subscribe event, after it set the channel's
// position (or left it out of ids), and the publications of the result,
// each advancing it.
func (ew *eventWriter) subscribed(b []byte) {
	if len(b) == 0 {
		return
	}
	flags := b[0]
	start, k := binary.Uvarint(b[1:])
	if k <= 0 {
		return
	}
	f := fields(b[1+k:])
	epoch, ok1 := f.next()
	ch, ok2 := f.next()
	data, ok3 := f.next()
	if !ok1 || !ok2 || !ok3 {
		return
	}
	if flags&flagRecoverable != 0 {
		ew.pos.set(string(ch), protocol.StreamPosition{Offset: start, Epoch: string(epoch)})
	} else {
		ew.pos.forget(string(ch))
	}
	ew.event(data)
	for line, ok := f.next(); ok; line, ok = f.next() {
		ew.line(line)
	}
}
