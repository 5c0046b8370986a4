package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/internal/testbrowser"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/proxy"
	"github.com/redcast/redcast/server"
)

const waitTimeout = 15 * time.Second

// TestChatThroughTheBackend runs the example backend with a redcast server
// whose proxies call it, and a browser: a user who logged in at the
// backend (a session cookie) opens the chat page, is named by the backend,
// sees a message rewritten by it and a refused one with its reason; a
// browser without the cookie is refused with the backend's reason.
func TestChatThroughTheBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backendURL := "http://" + ln.Addr().String()
	px := proxy.New(proxy.Config{Headers: []string{"Cookie"}})
	addr, _ := testserver.Start(t, server.Config{Node: redcast.Config{Proxy: redcast.ProxyConfig{
		Backend:    px,
		ConnectURL: backendURL + "/redcast/connect",
		PublishURL: backendURL + "/redcast/publish",
	}}})
	t.Cleanup(px.CloseIdleConnections)
	// The cookie of 127.0.0.1 goes to every port of it: the backend's and
	// redcast's.
	chatURL := "http://" + addr + "/#general"
	srv := &http.Server{Handler: newBackend(chatURL), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("backend: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })

	browser := testbrowser.Start(t)
	alice := newTab(t, browser)
	alice.run(chromedp.Navigate(backendURL + "/login?user=alice")) // redirected to the chat page
	alice.wait("the chat page", `location.host === `+jsString(addr)+` && document.getElementById('nick') !== null`)
	alice.run(chromedp.SetValue(chromedp.ID("nick"), "whoever"), chromedp.Click(chromedp.ID("join")))
	alice.wait("named alice by the backend", `document.getElementById('status').textContent === 'connected as alice' &&
		window.chat.subscription && window.chat.subscription.state === 'subscribed'`)

	alice.run(chromedp.SetValue(chromedp.ID("message"), "hello <b>world</b>"), chromedp.Click(chromedp.ID("send")))
	alice.wait("the message rewritten by the backend, from alice", `[...document.querySelectorAll('#messages .msg')].some((m) =>
		m.querySelector('.from').textContent.includes('alice') && m.querySelector('.text').textContent === 'hello world')`)

	alice.run(chromedp.SetValue(chromedp.ID("message"), "cheap SPAM"), chromedp.Click(chromedp.ID("send")))
	alice.wait("the backend's reason for refusing", `document.getElementById('send-error').textContent === 'Not sent: no spam here, alice'`)

	// Without the session cookie, the backend refuses the connection.
	stranger := newTab(t, browser)
	stranger.run(chromedp.Navigate(chatURL))
	stranger.wait("the chat page", `document.getElementById('nick') !== null`)
	stranger.run(chromedp.SetValue(chromedp.ID("nick"), "mallory"), chromedp.Click(chromedp.ID("join")))
	stranger.wait("refused with the backend's reason", `document.getElementById('status').textContent.includes('log in first')`)
}

// tab is a page in a browser context of its own (its own cookies).
type tab struct {
	t   *testing.T
	ctx context.Context
}

func newTab(t *testing.T, browser context.Context) *tab {
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// chromedp attaches to the tab's events once something listens to
	// them; without a listener, evaluations in the tab never answer.
	console := chromedp.Console(ctx)
	go func() {
		for _, err := range console {
			if err != nil {
				return
			}
		}
	}()
	return &tab{t: t, ctx: ctx}
}

func (p *tab) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("page: %v", err)
	}
}

// wait polls a JavaScript condition until it holds, or fails the test
// after waitTimeout with what the page shows.
func (p *tab) wait(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		dctx, dcancel := context.WithTimeout(p.ctx, 2*time.Second)
		defer dcancel()
		body, derr := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
		p.t.Fatalf("waiting for %s: %v\npage (%v):\n%s", what, err, derr, body)
	}
}

func jsString(s string) string { return fmt.Sprintf("%q", strings.ReplaceAll(s, "\n", "")) }
