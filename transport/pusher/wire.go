package pusher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Events of the protocol. Those a client sends are pusher:*; the server's
// replies about a channel are pusher_internal:*.
const (
	eventConnected         = "pusher:connection_established"
	eventError             = "pusher:error"
	eventPing              = "pusher:ping"
	eventPong              = "pusher:pong"
	eventSubscribe         = "pusher:subscribe"
	eventUnsubscribe       = "pusher:unsubscribe"
	eventSubscriptionErr   = "pusher:subscription_error"
	eventSubscribed        = "pusher_internal:subscription_succeeded"
	eventCacheMiss         = "pusher:cache_miss"
	clientEventPrefix      = "client-"
	privatePrefix          = "private-"
	privateEncryptedPrefix = "private-encrypted-"
	presencePrefix         = "presence-"
	cachePrefix            = "cache-"
)

// Limits of names, Pusher's.
const (
	maxChannelLength = 164
	maxEventLength   = 200
)

// message is one message of the protocol, either way: an event name, the
// channel it is about (if any) and its data. Clients send data as a JSON
// object; the server sends most data as a string holding JSON, which
// pusher-js parses.
type message struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	UserID  string          `json:"user_id,omitempty"`
}

// errBadMessage is wrapped by the errors of decodeMessage.
var errBadMessage = errors.New("pusher: bad message")

// decodeMessage decodes one frame of a client: a JSON object with a
// non-empty event of at most maxEventLength bytes and, when it names one, a
// valid channel.
func decodeMessage(frame []byte) (message, error) {
	var m message
	if err := json.Unmarshal(frame, &m); err != nil {
		return message{}, fmt.Errorf("%w: not a JSON object with an event", errBadMessage)
	}
	switch {
	case m.Event == "":
		return message{}, fmt.Errorf("%w: no event", errBadMessage)
	case len(m.Event) > maxEventLength:
		return message{}, fmt.Errorf("%w: event name longer than %d bytes", errBadMessage, maxEventLength)
	}
	if m.Channel != "" {
		if err := validateChannel(m.Channel); err != nil {
			return message{}, err
		}
	}
	return m, nil
}

// decodeData decodes the data of a client message into v. Clients send an
// object; a string holding one is accepted too.
func decodeData(data json.RawMessage, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%w: data: %v", errBadMessage, err)
		}
		data = []byte(s)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: data is not the object expected", errBadMessage)
	}
	return nil
}

// subscribeData is the data of pusher:subscribe (and pusher:unsubscribe,
// which has only the channel).
type subscribeData struct {
	Channel     string `json:"channel"`
	Auth        string `json:"auth,omitempty"`
	ChannelData string `json:"channel_data,omitempty"`
}

// validateChannel checks a Pusher channel name: 1 to 164 bytes of letters,
// digits and _ - = @ , . (Pusher allows ';' too, which redcast's channel
// names cannot hold; see docs/pusher.md).
func validateChannel(ch string) error {
	if ch == "" || len(ch) > maxChannelLength {
		return fmt.Errorf("%w: channel name must be 1 to %d bytes", errBadMessage, maxChannelLength)
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_-=@,.", c) >= 0 {
			continue
		}
		return fmt.Errorf("%w: channel name has a character outside [A-Za-z0-9_=@,.-] at byte %d", errBadMessage, i)
	}
	return nil
}

// encode returns m as one frame.
func encode(m message) []byte {
	b, _ := json.Marshal(m) // strings and valid JSON only: cannot fail
	return b
}

// jsonString returns the JSON string holding s: the form of the data the
// server sends.
func jsonString(s []byte) json.RawMessage {
	b, _ := json.Marshal(string(s))
	return b
}

// errorData is the data of pusher:error. A nil Code is an error that does
// not close the connection and has no code of its own.
type errorData struct {
	Code    *int   `json:"code"`
	Message string `json:"message"`
}

// errorMessage returns a pusher:error frame.
func errorMessage(code int, msg string) []byte {
	d := errorData{Message: msg}
	if code != 0 {
		d.Code = &code
	}
	data, _ := json.Marshal(d)
	return encode(message{Event: eventError, Data: data})
}
