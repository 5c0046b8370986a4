package protocol

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONString: what AppendJSONString writes is a JSON string that
// decodes to its input when that is valid UTF-8, and to valid UTF-8 when
// it is not.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "tab\tcr\rnl\n\x00\x1f", "<&>", "\u2028\u2029", "é ü 😀", "bad \xff\xfe end"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSONString([]byte("x"), s)
		if b[0] != 'x' {
			t.Fatalf("the prefix was overwritten: %q", b)
		}
		var got string
		if err := json.Unmarshal(b[1:], &got); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, b[1:], err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q encoded as %s decodes to %q", s, b[1:], got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("%q decodes to invalid UTF-8 %q", s, got)
		}
		if string(AppendJSONString(nil, []byte(s))) != string(b[1:]) {
			t.Fatalf("%q: string and []byte encode differently", s)
		}
	})
}
