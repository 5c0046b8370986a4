// Command backend is an example application backend for redcast's proxies
// (docs/backend.md). Users log in at /login?user=NAME, which sets a session
// cookie and sends them to the chat page. redcast forwards the cookie to
// the connect proxy, which names the user; the publish proxy refuses
// messages that mention spam and rewrites the others: HTML tags stripped,
// a server-side id added.
//
//	go run ./examples/backend -addr 127.0.0.1:3000 -chat http://127.0.0.1:8080/
//	redcast --proxy-connect-url http://127.0.0.1:3000/redcast/connect \
//	  --proxy-publish-url http://127.0.0.1:3000/redcast/publish --proxy-headers Cookie
package main

import (
	"crypto/rand"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3000", "address to listen on")
	chat := flag.String("chat", "http://127.0.0.1:8080/", "the redcast chat page users go to once logged in")
	flag.Parse()
	log.Fatal(http.ListenAndServe(*addr, newBackend(*chat)))
}

// backend keeps the sessions of logged-in users in memory.
type backend struct {
	chat     string
	mu       sync.Mutex
	sessions map[string]string // session cookie -> user
	lastID   int
}

func newBackend(chat string) http.Handler {
	b := &backend{chat: chat, sessions: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", b.login)
	mux.HandleFunc("POST /redcast/connect", b.connect)
	mux.HandleFunc("POST /redcast/publish", b.publish)
	return mux
}

// login starts a session (a real application checks a password here).
func (b *backend) login(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if user == "" || len(user) > 32 {
		http.Error(w, "login with ?user=NAME (1 to 32 bytes)", http.StatusBadRequest)
		return
	}
	sid := rand.Text()
	b.mu.Lock()
	b.sessions[sid] = user
	b.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "session", Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, b.chat, http.StatusFound)
}

// connect names the client by its session cookie, or refuses it.
func (b *backend) connect(w http.ResponseWriter, r *http.Request) {
	user := ""
	if c, err := r.Cookie("session"); err == nil {
		b.mu.Lock()
		user = b.sessions[c.Value]
		b.mu.Unlock()
	}
	if user == "" {
		reply(w, map[string]any{"disconnect": map[string]any{"code": 4501, "reason": "log in first"}})
		return
	}
	reply(w, map[string]any{"result": map[string]any{"user": user, "info": map[string]string{"name": user}}})
}

var tags = regexp.MustCompile(`<[^>]*>`)

// publish refuses spam and rewrites the rest.
func (b *backend) publish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User string `json:"user"`
		Data struct {
			Text string `json:"text"`
		} `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if strings.Contains(strings.ToLower(req.Data.Text), "spam") {
		reply(w, map[string]any{"error": map[string]any{"code": 1000, "message": "no spam here, " + req.User}})
		return
	}
	b.mu.Lock()
	b.lastID++
	id := b.lastID
	b.mu.Unlock()
	text := tags.ReplaceAllString(req.Data.Text, "")
	reply(w, map[string]any{"result": map[string]any{"data": map[string]any{"text": text, "id": id}}})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
