package auth

// Strict JSON decoding for the configuration file: exact keys, and errors
// that name the key path.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// decodeStrict decodes the JSON object data into the struct v. Keys must be
// v's json keys, spelled exactly; errors name the key's path.
func decodeStrict(data []byte, path string, v any) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil || keys == nil {
		if len(bytes.TrimSpace(data)) == 0 {
			return fmt.Errorf("%sempty: want a JSON object", prefix(path))
		}
		var serr *json.SyntaxError
		if errors.As(err, &serr) {
			line, col := position(data, serr.Offset)
			return fmt.Errorf("%sline %d, column %d: %s", prefix(path), line, col, strings.TrimPrefix(serr.Error(), "json: "))
		}
		return fmt.Errorf("%swant a JSON object", prefix(path))
	}
	known := jsonKeys(reflect.TypeOf(v).Elem())
	for _, k := range sortedKeys(keys) {
		if !slices.Contains(known, k) {
			return fmt.Errorf("%sunknown key %q%s", prefix(path), k, suggest(k, known))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var terr *json.UnmarshalTypeError
		if errors.As(err, &terr) && terr.Field != "" {
			return fmt.Errorf("%s: want %s, got %s", keyPath(path, terr.Field), kind(terr.Type), terr.Value)
		}
		return fmt.Errorf("%s%w", prefix(path), err)
	}
	return nil
}

// jsonKeys lists the json keys of a struct type.
func jsonKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, jsonName(t.Field(i)))
	}
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// kind describes a Go type the way a configuration file spells it.
func kind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(kind(t.Elem()), "a ") + "s"
	}
	return "an object"
}

// suggest returns ` (did you mean "x"?)` for the known key closest to k.
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(strings.ToLower(k), c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// position returns the 1-based line and column of the byte a
// json.SyntaxError's offset points after.
func position(data []byte, off int64) (line, col int) {
	i := int(min(max(off-1, 0), int64(len(data))))
	before := data[:i]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = i - bytes.LastIndexByte(before, '\n')
	return line, col
}

// keyPath joins a key to a path: namespaces.chat, or namespaces."a b" for a
// key that is not a plain word.
func keyPath(path, key string) string {
	plain := key != "" && strings.IndexFunc(key, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.')
	}) < 0
	if !plain {
		key = fmt.Sprintf("%q", key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

// isSet reports whether a raw value is present and not null.
func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
