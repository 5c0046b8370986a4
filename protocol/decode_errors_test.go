package protocol

import (
	"strings"
	"testing"
)

// TestMalformedCommandKeepsID: the id of a line that does not decode is
// recovered when it comes first (or among the first fields), however
// broken or deep the rest is, so that a client with several commands in
// flight learns which one failed.
func TestMalformedCommandKeepsID(t *testing.T) {
	deep := `{"id":3,"method":"ping","params":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`
	for _, tc := range []struct {
		line string
		id   uint32
	}{
		{`{"id":6,"method":"ping","params":{"x":}}`, 6},
		{deep, 3},
		{`{"method":"ping","params":{"a":[1,{"b":2}]},"id":9,"x":}`, 9},
		{`{"method":"ping","id":"7"}`, 0},
		{`{"id":99999999999,"method":`, 0},
		{`[1,2]`, 0},
		{`{"x":{"id":5},`, 0},
	} {
		cmd, err := DecodeCommand([]byte(tc.line))
		if err == nil {
			t.Errorf("%.50q decoded", tc.line)
			continue
		}
		if cmd.ID != tc.id {
			t.Errorf("%.50q: id %d, want %d", tc.line, cmd.ID, tc.id)
		}
	}
}

// TestParamsErrorsSayWhatIsWrong: a field of the wrong type is named, with
// the JSON type it must be, and no Go type names.
func TestParamsErrorsSayWhatIsWrong(t *testing.T) {
	cmd, err := DecodeCommand([]byte(`{"id":1,"method":"subscribe","params":{"channel":"a","history":"ten"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var p SubscribeParams
	err = DecodeParams(cmd, &p)
	if err == nil {
		t.Fatal("a string history decoded")
	}
	msg := err.Error()
	for _, want := range []string{"params.history", "an integer"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, bad := range []string{"Go struct", "SubscribeParams", "int"} {
		if strings.Contains(strings.ReplaceAll(msg, "an integer", ""), bad) {
			t.Errorf("error %q shows Go internals (%q)", msg, bad)
		}
	}
}
