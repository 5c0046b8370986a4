package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redcast/redcast"
)

// FuzzAPI sends arbitrary bodies to every endpoint of a real node's API:
// each must get a JSON answer with a documented status, never a panic.
func FuzzAPI(f *testing.F) {
	node := redcast.NewNode(redcast.Config{}, redcast.Deps{})
	if err := node.Start(f.Context()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = node.Shutdown(f.Context()) })
	h, err := NewHandler(node, Options{Key: "k", MaxBodySize: 4 << 10})
	if err != nil {
		f.Fatal(err)
	}
	endpoints := []string{"publish", "broadcast", "history", "presence", "channels", "disconnect", "unsubscribe", "info",
		"revoke_token", "invalidate_user_tokens", "block_user", "unblock_user"}
	for i, body := range []string{
		`{"channel":"chat:a","data":{"text":"x"}}`,
		`{"channels":["chat:a","bad channel"],"data":1}`,
		`{"channel":"chat:a","limit":5,"since":{"offset":1,"epoch":"e"}}`,
		`{"channel":"chat:a"}`, `{"prefix":"chat"}`, `{"user":"u","reconnect":true}`,
		`{"user":"u","channel":"chat:a"}`, ``, `null`, `[]`, `{"data":}`, "{\"channel\":\"\xff\"}",
		`{}`, `{"channel":"chat:a","data":1,"idempotency_key":"k-1"}`, `{"channel":"chat:a","data":1,"idempotency_key":"a b"}`,
		`{"jti":"j-1","expire_at":1900000000}`, `{"jti":"","expire_at":-1}`,
		`{"user":"u","issued_before":1700000000,"expire_at":0}`, `{"user":"u","issued_before":1e300}`,
		`{"user":"u"}`, `{"user":""}`,
	} {
		for j := range endpoints { // every body to every endpoint
			f.Add(uint8(i*len(endpoints)+j), body)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		ep := endpoints[int(which)%len(endpoints)]
		req := httptest.NewRequest(http.MethodPost, "/api/"+ep, strings.NewReader(body))
		req.Header.Set("Authorization", "apikey k")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%s %q: status %d: %s", ep, body, rec.Code, rec.Body)
		}
		var out struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    uint32 `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: answer %q is not JSON: %v", ep, body, rec.Body, err)
		}
		if (rec.Code == http.StatusOK) != (out.Error == nil) || (out.Result == nil) == (out.Error == nil) {
			t.Fatalf("%s %q: status %d with answer %s", ep, body, rec.Code, rec.Body)
		}
	})
}

func TestNewHandlerNeedsKey(t *testing.T) {
	if _, err := NewHandler(nil, Options{}); err != ErrNoKey {
		t.Fatalf("NewHandler without a key: %v, want ErrNoKey", err)
	}
}
