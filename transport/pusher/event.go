package pusher

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/protocol"
)

// This file maps redcast publications to Pusher events and back.
//
// A Pusher event (from a client event, or the HTTP API) is published as a
// redcast publication whose data is an envelope: {"event": name, "data":
// data} (with "user_id" for client events on presence channels). Pusher
// clients get that event back as it was; redcast clients see the envelope.
// A publication of anything else (from redcast's own clients or API) reaches
// Pusher clients as the event DefaultEvent, its data the publication's data
// as a JSON string.

// DefaultEvent is the Pusher event of a publication that is not a Pusher
// envelope.
const DefaultEvent = "redcast:publication"

// envelope is the data of a publication that carries a Pusher event.
type envelope struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data,omitempty"`
	UserID string          `json:"user_id,omitempty"`
}

// publicationData returns the data of the publication that carries an
// event.
func publicationData(event string, data json.RawMessage, userID string) []byte {
	b, _ := json.Marshal(envelope{Event: event, Data: data, UserID: userID}) // valid JSON: cannot fail
	return b
}

// format is the hub format of Pusher clients: each event is encoded once
// per broadcast for all of them.
var format = hub.RegisterFormat(encodeEvent)

// encodeEvent is the Pusher form of a hub event: a publication as the
// event it carries (see above), in the channel named without its
// namespace. Joins and leaves have no Pusher form (Pusher's presence is by
// user, not by connection).
func encodeEvent(ev *hub.Event) []byte {
	if ev.Kind != hub.KindPublication {
		return nil
	}
	_, ch, ok := strings.Cut(ev.Channel, string(protocol.NamespaceSeparator))
	if !ok {
		return nil
	}
	m := message{Channel: ch}
	var env envelope
	if d := bytes.TrimSpace(ev.Pub.Data); len(d) > 0 && d[0] == '{' && json.Unmarshal(d, &env) == nil && env.Event != "" {
		m.Event, m.Data, m.UserID = env.Event, env.Data, env.UserID
	} else {
		m.Event, m.Data = DefaultEvent, jsonString(ev.Pub.Data)
	}
	return encode(m)
}
