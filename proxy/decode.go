package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxReplySize bounds the body of a reply, in bytes: a longer one is a bad
// reply.
const MaxReplySize = 1 << 20

// MaxMessageSize bounds the message of an error and the reason of a
// disconnect: longer ones are cut (a WebSocket close reason carries at
// most 123 bytes; the disconnect push carries it whole).
const MaxMessageSize = 512

// Result is one of the result types; Decode checks and completes it.
type Result interface {
	ConnectResult | RefreshResult | SubscribeResult | PublishResult | RPCResult
}

// reply is the envelope of every reply.
type reply[T Result] struct {
	Result     *T          `json:"result"`
	Error      *Error      `json:"error"`
	Disconnect *Disconnect `json:"disconnect"`
}

// Decode decodes a reply body. It returns the result; or the backend's
// *Error or *Disconnect as the error (a disconnect wins over an error,
// which wins over a result, as with Centrifugo); or an *UnavailableError
// (ReasonBadReply) when body is not a reply: not a JSON object, larger
// than MaxReplySize, a field of the wrong type, base64 that does not
// decode, info that is not a JSON object, data that is not JSON. A reply
// without any of the three is a result with every field zero. Decode never
// panics, whatever body holds.
func Decode[T Result](body []byte) (*T, error) {
	if len(body) > MaxReplySize {
		return nil, unavailable(ReasonBadReply, nil, "backend reply larger than %d bytes", MaxReplySize)
	}
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return nil, unavailable(ReasonBadReply, nil, "backend reply is not a JSON object")
	}
	var r reply[T]
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, unavailable(ReasonBadReply, err, "backend reply is not valid")
	}
	switch {
	case r.Disconnect != nil:
		r.Disconnect.Reason = Cut(r.Disconnect.Reason, MaxMessageSize)
		return nil, r.Disconnect
	case r.Error != nil:
		r.Error.Message = Cut(r.Error.Message, MaxMessageSize)
		return nil, r.Error
	case r.Result == nil:
		return new(T), nil
	}
	if err := complete(r.Result); err != nil {
		return nil, unavailable(ReasonBadReply, err, "backend reply is not valid")
	}
	return r.Result, nil
}

// complete decodes the base64 fields of a result into their JSON ones and
// checks them.
func complete(res any) error {
	switch r := res.(type) {
	case *ConnectResult:
		if err := info(&r.Info, &r.B64Info); err != nil {
			return err
		}
		if r.ExpireAt < 0 {
			return errors.New("negative expire_at")
		}
		return data(&r.Data, &r.B64Data, "data")
	case *RefreshResult:
		if r.ExpireAt < 0 {
			return errors.New("negative expire_at")
		}
		return info(&r.Info, &r.B64Info)
	case *SubscribeResult:
		if err := info(&r.Info, &r.B64Info); err != nil {
			return err
		}
		return data(&r.Data, &r.B64Data, "data")
	case *PublishResult:
		return data(&r.Data, &r.B64Data, "data")
	case *RPCResult:
		return data(&r.Data, &r.B64Data, "data")
	}
	return nil
}

// data sets *raw from *b64 when that is set, checks that it is JSON, and
// clears a JSON null (no data).
func data(raw *json.RawMessage, b64 *string, name string) error {
	if *b64 != "" {
		if len(*raw) > 0 && !isNull(*raw) {
			return fmt.Errorf("both %s and b64%s", name, name)
		}
		dec, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return fmt.Errorf("b64%s: %w", name, err)
		}
		*raw, *b64 = json.RawMessage(dec), ""
	}
	if isNull(*raw) {
		*raw = nil
		return nil
	}
	if !json.Valid(*raw) {
		return fmt.Errorf("%s is not JSON (redcast carries JSON data only)", name)
	}
	return nil
}

// info is data for info, which must be a JSON object.
func info(raw *json.RawMessage, b64 *string) error {
	if err := data(raw, b64, "info"); err != nil {
		return err
	}
	if len(*raw) > 0 && bytes.TrimSpace(*raw)[0] != '{' {
		return errors.New("info is not a JSON object")
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	b := bytes.TrimSpace(raw)
	return len(b) == 0 || string(b) == "null"
}

// Cut bounds a message of the backend to n bytes, cutting at a rune
// boundary.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}
