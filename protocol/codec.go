package protocol

import (
	"bytes"
	"encoding/json"
)

// Lines calls fn for every non-blank line of a frame, in order, and stops
// early when fn returns false. It is how both sides split a frame that
// carries several messages.
func Lines(frame []byte, fn func(line []byte) bool) {
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !fn(line) {
			return
		}
	}
}

// DecodeCommand parses one line into a command. The returned error is an
// *Error with code ErrBadRequest; the command's ID is filled in when it could
// be read so the error can be answered to the right command.
func DecodeCommand(line []byte) (Command, error) {
	var cmd Command
	if err := json.Unmarshal(line, &cmd); err != nil {
		// Try to save the id so that the client learns which command failed.
		var idOnly struct {
			ID uint32 `json:"id"`
		}
		_ = json.Unmarshal(line, &idOnly)
		return Command{ID: idOnly.ID}, ErrBadRequest.WithMessage("malformed command: %v", err)
	}
	if cmd.ID == 0 {
		return cmd, ErrBadRequest.WithMessage("command id must be a positive integer")
	}
	if cmd.Method == "" {
		return cmd, ErrBadRequest.WithMessage("command has no method")
	}
	if len(cmd.Params) > 0 && cmd.Params[0] != '{' && !bytes.Equal(cmd.Params, []byte("null")) {
		return cmd, ErrBadRequest.WithMessage("params must be a JSON object")
	}
	return cmd, nil
}

// DecodeParams unmarshals a command's params into dst. Absent params decode as
// the zero value. Unknown fields are ignored so that newer clients can talk
// to older servers.
func DecodeParams(cmd Command, dst any) error {
	if len(cmd.Params) == 0 {
		return nil
	}
	if err := json.Unmarshal(cmd.Params, dst); err != nil {
		return ErrBadRequest.WithMessage("bad params for %s: %v", cmd.Method, err)
	}
	return nil
}

// AppendReply appends the encoding of a reply with the given result to dst.
func AppendReply(dst []byte, id uint32, result any) ([]byte, error) {
	raw, err := appendJSON(nil, result)
	if err != nil {
		return dst, err
	}
	return appendJSON(dst, Reply{ID: id, Result: raw})
}

// AppendError appends the encoding of an error reply to dst.
func AppendError(dst []byte, id uint32, e *Error) []byte {
	out, _ := appendJSON(dst, Reply{ID: id, Error: e}) // cannot fail: plain fields only
	return out
}

// AppendPush appends the encoding of a push to dst.
func AppendPush(dst []byte, p *Push) ([]byte, error) { return appendJSON(dst, p) }

// appendJSON appends v's JSON to dst without HTML escaping, so that data
// comes back byte for byte as it was published (json.Marshal would turn
// < > & into \u003c and friends).
func appendJSON(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	out := buf.Bytes()
	return out[:len(out)-1], nil // Encode ends with '\n'
}

// PlainText is what a plain-mode client receives for publication data: the
// string in a "text" field when data is an object that has one, otherwise
// the data itself as JSON text.
func PlainText(data json.RawMessage) []byte {
	if len(data) > 0 && data[0] == '{' {
		var msg struct {
			Text *string `json:"text"`
		}
		if json.Unmarshal(data, &msg) == nil && msg.Text != nil {
			return []byte(*msg.Text)
		}
	}
	return data
}

// PlainData is the publication data of a text frame sent by a plain-mode
// client: {"text": TEXT}.
func PlainData(text []byte) json.RawMessage {
	b, _ := json.Marshal(struct {
		Text string `json:"text"`
	}{string(text)})
	return b
}
