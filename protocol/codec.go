package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
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
		// Save the id, when the line starts with it (or has it among its
		// first fields), so that the client learns which command failed.
		return Command{ID: leadingID(line)}, ErrBadRequest.WithMessage("malformed command: %s", describe(err, ""))
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

// maxIDTokens bounds how far into a malformed line leadingID looks.
const maxIDTokens = 64

// leadingID reads the id of a command line that does not decode, from the
// fields before the first error: a line that starts {"id":6,... gives 6
// however broken or deep the rest is. It returns 0 when it finds none.
func leadingID(line []byte) uint32 {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0
	}
	depth := 0 // of values being skipped
	expectKey := true
	for range maxIDTokens {
		t, err := dec.Token()
		if err != nil {
			return 0
		}
		switch v := t.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				depth++
			case '}', ']':
				if depth == 0 {
					return 0
				}
				depth--
			}
			if depth == 0 {
				expectKey = true
			}
			continue
		case string:
			if depth == 0 && expectKey && v == "id" {
				t, err := dec.Token()
				if err != nil {
					return 0
				}
				n, ok := t.(json.Number)
				if !ok {
					return 0
				}
				id, err := strconv.ParseUint(string(n), 10, 32)
				if err != nil {
					return 0
				}
				return uint32(id)
			}
		}
		if depth == 0 {
			expectKey = !expectKey
		}
	}
	return 0
}

// DecodeParams unmarshals a command's params into dst. Absent params decode as
// the zero value. Unknown fields are ignored so that newer clients can talk
// to older servers.
func DecodeParams(cmd Command, dst any) error {
	if len(cmd.Params) == 0 {
		return nil
	}
	if err := json.Unmarshal(cmd.Params, dst); err != nil {
		return ErrBadRequest.WithMessage("bad params for %s: %s", cmd.Method, describe(err, "params"))
	}
	return nil
}

// describe says what is wrong with a JSON value in the client's terms, not
// in Go's: which field has the wrong type and what it must be. prefix
// names the value the fields are in ("params"), or is empty.
func describe(err error, prefix string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		switch {
		case field == "" && prefix == "":
			field = "the command"
		case field == "":
			field = prefix
		case prefix != "":
			field = prefix + "." + field
		}
		return fmt.Sprintf("%s must be %s, not %s", field, jsonType(te.Type), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return "invalid JSON"
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return "an object"
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
