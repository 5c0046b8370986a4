// Package web serves what the browser gets: the chat page and redcast.js,
// the JavaScript client of the redcast protocol, embedded in the binary.
//
// Handler serves the files of static/ at the root of a mux. Every response
// says Cache-Control: no-cache with a content hash as ETag, so that a
// browser revalidates (cheaply, with 304) and never runs a stale client
// against a newer server.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// loadFiles reads the embedded files once, on the first call to Handler.
var loadFiles = sync.OnceValues(load)

// file is one static file, read once at start.
type file struct {
	name        string
	data        string
	contentType string
	etag        string
}

// contentTypes pins the types the page depends on (a module script must be
// served as JavaScript) instead of trusting the host's mime tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
}

// Handler returns the handler of the chat page and its files: "/" (and
// "/index.html") is the page, "/admin" the status page, "/NAME" is
// static/NAME. It answers GET and
// HEAD; other methods get 405, unknown paths 404. Handler is safe for
// concurrent use.
func Handler() http.Handler {
	files, err := loadFiles()
	if err != nil {
		// The files are embedded at build time; failing to read them is a
		// broken build, not a runtime condition.
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		switch name {
		case "":
			name = "index.html"
		case "admin":
			name = "admin.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if path.Ext(f.name) == ".html" {
			h.Set("Content-Security-Policy", pageCSP(r.Host))
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
		}
		http.ServeContent(w, r, f.name, time.Time{}, strings.NewReader(f.data))
	})
}

// pageCSP allows the page to load only its own files and to open
// WebSockets only to its own host: even if user text were ever rendered as
// HTML, an injected script or image could not run or load. 'self' covers
// ws: and wss: in current browsers; the explicit host covers older ones.
func pageCSP(host string) string {
	connect := "'self'"
	if host != "" {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src " + connect + "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// load reads every embedded file under static/ into memory.
func load() (map[string]file, error) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	files := make(map[string]file)
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			ct = mime.TypeByExtension(path.Ext(name))
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(data)
		files[name] = file{
			name:        name,
			data:        string(data),
			contentType: ct,
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: reading embedded files: %w", err)
	}
	return files, nil
}
