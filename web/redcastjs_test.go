package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redcast/redcast/web"
)

// TestRedcastJS runs the unit tests of redcast.js (testdata/redcast_test.js)
// in Chromium. They play the server through a fake WebSocket, to cover what a
// real server does not do on demand: duplicates, gaps, lost pings, refused
// reconnects, backoff.
func TestRedcastJS(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.Handle("/test/", http.StripPrefix("/test/", http.FileServer(http.Dir("testdata"))))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	browser := startBrowser(t)
	p := newPage(t, browser)
	p.name = "redcast_test.html"
	p.do(chromedp.Navigate(ts.URL + "/test/redcast_test.html"))
	p.waitJS("the tests to finish", `Array.isArray(window.results)`)

	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	type result struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[[]result](`window.results`))
	if err != nil {
		t.Fatalf("reading the results: %v", err)
	}
	if len(results) == 0 {
		t.Fatal("no test ran")
	}
	for _, r := range results {
		if r.Error != "" {
			t.Errorf("%s:\n%s", r.Name, r.Error)
		} else {
			t.Logf("ok: %s", r.Name)
		}
	}
}
