package pusher_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redcast/redcast/internal/testbrowser"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
)

// browserTimeout bounds a scenario in the page.
const browserTimeout = 20 * time.Second

// startBackend starts backend.mjs, the page's server made of Pusher's
// server SDK, at addr, for the redcast server at redcastAddr; it is killed
// when the test ends.
func startBackend(t *testing.T, addr, redcastAddr string) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithCancel(context.Background())
	cmd, stdout, stderr := startNode(t, ctx, redcastAddr, []string{"backend.mjs"}, "PORT="+port)
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait() // killed
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("stderr of backend.mjs:\n%s", stderr.String())
		}
	})
	listening := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		listening <- strings.Contains(line, `"listening"`)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case ok := <-listening:
		if !ok {
			t.Fatalf("backend.mjs did not start:\n%s", stderr.String())
		}
	case <-time.After(browserTimeout):
		t.Fatal("backend.mjs did not start in time")
	}
}

// browserPage is the page of backend.mjs in a tab of its own.
type browserPage struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// openBrowserPage opens the page at base for the redcast server at
// redcastAddr. Exceptions and console errors of the page fail the test.
func openBrowserPage(t *testing.T, browser context.Context, base, redcastAddr string) *browserPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	p := &browserPage{t: t, ctx: ctx}
	t.Cleanup(cancel)
	t.Cleanup(func() { // before cancel
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.problems {
			t.Errorf("page: %s", s)
		}
	})
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.mu.Lock()
				p.problems = append(p.problems, fmt.Sprintf("%s (%s)", m, m.URL))
				p.mu.Unlock()
			}
		}
	}()
	nctx, ncancel := context.WithTimeout(ctx, browserTimeout)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(base+"/?ws="+redcastAddr+"&key="+testApp.Key)); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	return p
}

// run runs a scenario of page.js and returns its result in JSON.
func (p *browserPage) run(name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](
		"window.scenarios."+name+"()", chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("scenario %s: %v", name, err)
	}
	return string(res)
}

// pusher-js and Laravel Echo, their browser bundles unchanged, in
// Chromium against redcast, their page's backend made of Pusher's server
// SDK: public, cache (hit and miss), end-to-end encrypted, private and
// presence channels, client events and whispers.
func TestBrowserPusherJSAndEcho(t *testing.T) {
	backend := testserver.FreeAddr(t)
	addr, _ := start(t, server.Config{AllowedOrigins: []string{"http://" + backend}})
	startBackend(t, backend, addr)
	browser := testbrowser.Start(t)
	for _, tc := range []struct{ scenario, want string }{
		{"pusherjsChannels", `{"news":{"id":42},"cached":{"p":2},"missed":true,"secret":{"code":"open sesame"}}`},
		{"pusherjsPrivatePresence", `{"private":{"who":"a"},"a_heard_itself":false,"ben_sees":["ann","ben"],"me":"ben","added":{"name":"ben"},"wave_user":"ben","removed":"ben"}`},
		{"echo", `{"order":{"id":42},"whisper":{"name":"ben"},"secret":{"code":"open sesame"},"cached":{"n":7},"ann_here":["ann"],"ben_here":["ann","ben"],"joining":"ben","leaving":"ben"}`},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			p := openBrowserPage(t, browser, "http://"+backend, addr)
			if got := p.run(tc.scenario); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
