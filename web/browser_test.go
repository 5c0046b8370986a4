package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/internal/browsertest"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
)

// waitTimeout bounds every wait for a condition in a page.
const waitTimeout = 10 * time.Second

// TestChatPage drives the chat page in headless Chromium against a real
// redcast server. The subtests share the server and the browser; each uses
// its own room and its own browser contexts (separate storage, separate
// connections), so they run in parallel.
func TestChatPage(t *testing.T) {
	addr := startServer(t)
	browser := startBrowser(t)
	base := "http://" + addr

	t.Run("TwoUsersChat", func(t *testing.T) {
		t.Parallel()
		alice := openPage(t, browser, base, "two-users")
		bob := openPage(t, browser, base, "two-users")
		alice.join("alice")
		bob.join("bob")

		alice.send("hi from alice")
		bob.send("hi from bob")
		want := []msg{{"alice", "hi from alice"}, {"bob", "hi from bob"}}
		alice.waitMessages(want)
		bob.waitMessages(want)

		alice.waitOnline("alice", "bob")
		bob.waitOnline("alice", "bob")
	})

	t.Run("TextIsNotHTML", func(t *testing.T) {
		t.Parallel()
		const evil = `<img src=x onerror=alert(1)>`
		p := openPage(t, browser, base, "xss")
		p.join("mallory")
		p.send(evil)
		p.waitMessages([]msg{{"mallory", evil}})
		p.waitJS("no element parsed from the message", `document.querySelectorAll('#messages img').length === 0 &&
			document.querySelector('#messages .msg .text').children.length === 0`)
	})

	t.Run("RecoversAfterDrop", func(t *testing.T) {
		t.Parallel()
		a := openPage(t, browser, base, "recovery")
		b := openPage(t, browser, base, "recovery")
		a.join("anna")
		b.join("ben")
		b.send("before the drop")
		a.waitMessages([]msg{{"ben", "before the drop"}})

		// Mark the message on screen: recovery must add to the view, not
		// rebuild it from history.
		a.eval(`document.querySelector('#messages .msg').dataset.marked = 'yes'`)
		a.eval(`window.chat.client._drop({hold: true})`)
		a.waitJS("reconnecting status", `document.getElementById('status').dataset.state === 'connecting'`)
		b.send("missed 1")
		b.send("missed 2")
		b.send("missed 3")
		want := []msg{{"ben", "before the drop"}, {"ben", "missed 1"}, {"ben", "missed 2"}, {"ben", "missed 3"}}
		b.waitMessages(want)
		if got := a.messages(); len(got) != 1 {
			t.Fatalf("anna's page shows %v while it is offline, want only the message before the drop", got)
		}

		a.eval(`window.chat.client._resume()`)
		a.waitJS("reconnected", `document.getElementById('status').dataset.state === 'connected' &&
			window.chat.subscription.state === 'subscribed'`)
		a.waitMessages(want)
		a.waitJS("recovered in place, without a notice", `document.getElementById('notice').hidden &&
			document.querySelector('#messages .msg').dataset.marked === 'yes'`)

		// After recovery the live stream continues without gaps.
		b.send("after the drop")
		want = append(want, msg{"ben", "after the drop"})
		a.waitMessages(want)
		a.waitOnline("anna", "ben")
	})

	t.Run("NoticeWhenRecoveryFails", func(t *testing.T) {
		t.Parallel()
		a := openPage(t, browser, base, "lost")
		b := openPage(t, browser, base, "lost")
		a.join("anna")
		b.join("ben")
		b.send("first")
		a.waitMessages([]msg{{"ben", "first"}})

		a.eval(`window.chat.client._drop({hold: true})`)
		a.waitJS("reconnecting status", `document.getElementById('status').dataset.state === 'connecting'`)
		// More than the channel's history (100) keeps: the gap cannot be
		// recovered, and the page shows the latest 50 instead.
		const n = 120
		b.eval(fmt.Sprintf(`Promise.all(Array.from({length: %d}, (_, i) =>
			window.chat.subscription.publish({text: 'bulk ' + i})))`, n))
		var want []msg
		for i := n - 50; i < n; i++ {
			want = append(want, msg{"ben", fmt.Sprintf("bulk %d", i)})
		}
		a.eval(`window.chat.client._resume()`)
		// What was on screen stays, a line marks the gap, the room's
		// latest messages follow it, and the notice speaks to a person.
		a.waitMessages(append([]msg{{"ben", "first"}}, want...))
		a.waitBreak(1, 52)
	})

	t.Run("RetryNow", func(t *testing.T) {
		t.Parallel()
		p := openPage(t, browser, base, "retry")
		p.join("rita")
		p.waitJS("no retry button while connected", `document.getElementById('retry').hidden`)
		// Held: the client would wait for ever.
		p.eval(`window.chat.client._drop({hold: true})`)
		p.waitJS("a retry button while reconnecting", `!document.getElementById('retry').hidden &&
			document.getElementById('status').dataset.state === 'connecting'`)
		p.do(chromedp.Click(chromedp.ID("retry")))
		p.waitJS("reconnected at once", `document.getElementById('status').dataset.state === 'connected' &&
			document.getElementById('retry').hidden && window.chat.subscription.state === 'subscribed'`)
	})

	t.Run("MessageLimit", func(t *testing.T) {
		t.Parallel()
		p := openPage(t, browser, base, "limit")
		p.join("lim")
		typeMessage := func(n int) {
			p.eval(fmt.Sprintf(`(() => {
				const m = document.getElementById('message');
				m.value = 'x'.repeat(%d);
				m.dispatchEvent(new Event('input'));
			})()`, n))
		}
		// The server takes 16 KiB of data: {"text":"…"} is 11 bytes more.
		typeMessage(10000)
		p.waitJS("10,000 characters kept, nothing said yet", `document.getElementById('message').value.length === 10000 &&
			document.getElementById('left').textContent === ''`)
		typeMessage(15500)
		p.waitJS("what is left", `document.getElementById('left').textContent === '873 characters left'`)
		typeMessage(17000)
		p.waitJS("what is too much", `document.getElementById('left').textContent === '627 characters too many'`)
		p.do(chromedp.Click(chromedp.ID("send")))
		p.waitJS("not sent, and why", `document.getElementById('send-error').textContent.includes('remove 627 characters') &&
			document.getElementById('message').value.length === 17000`)
		// Exactly the limit is sent.
		full := strings.Repeat("y", 16<<10-11)
		p.send(full)
		p.waitMessages([]msg{{"lim", full}})
	})

	t.Run("NicknameCountedAsPeopleCount", func(t *testing.T) {
		t.Parallel()
		p := openPage(t, browser, base, "nick")
		typeNick := func(s string) {
			p.eval(fmt.Sprintf(`(() => {
				const n = document.getElementById('nick');
				n.value = %s;
				n.dispatchEvent(new Event('input'));
			})()`, jsString(s)))
		}
		// 22 Chinese characters are 66 bytes: 2 over the server's 64.
		typeNick(strings.Repeat("汉", 22))
		p.waitJS("refused in the box, in characters", `!document.getElementById('nick').validity.valid &&
			document.getElementById('nick').validationMessage.includes('remove 1 character (it can have 21 characters')`)
		p.do(chromedp.Click(chromedp.ID("join")))
		p.waitJS("not joined", `window.chat.client === null`)
		typeNick(strings.Repeat("汉", 21))
		p.waitJS("accepted", `document.getElementById('nick').validity.valid`)
		p.do(chromedp.Click(chromedp.ID("join")))
		p.waitJS("joined", `window.chat.subscription && window.chat.subscription.state === 'subscribed'`)
	})

	t.Run("OnlySpacesHint", func(t *testing.T) {
		t.Parallel()
		p := openPage(t, browser, base, "spaces")
		p.join("sam")
		p.do(chromedp.SetValue(chromedp.ID("message"), "   "), chromedp.Click(chromedp.ID("send")))
		p.waitJS("a hint", `document.getElementById('send-error').textContent.includes('Only spaces')`)
		if got := p.messages(); len(got) != 0 {
			t.Errorf("a message of spaces was sent: %v", got)
		}
	})

	t.Run("PlainWebSocketClient", func(t *testing.T) {
		t.Parallel()
		const room = "plain"
		p := openPage(t, browser, base, room)
		p.join("paula")

		plain := dialPlain(t, "ws://"+addr+"/rooms/"+room+"?name=plainbob")
		p.waitOnline("paula", "plainbob")

		plain.send("hello from a plain socket")
		p.waitMessages([]msg{{"plainbob", "hello from a plain socket"}})

		p.send("hello plainbob")
		if got := plain.read(); got != "hello plainbob" {
			t.Fatalf("plain client read %q, want %q", got, "hello plainbob")
		}
		p.waitMessages([]msg{{"plainbob", "hello from a plain socket"}, {"paula", "hello plainbob"}})
	})

	t.Run("PeopleNotConnections", func(t *testing.T) {
		t.Parallel()
		dave := openPage(t, browser, base, "people")
		tab1 := openPage(t, browser, base, "people")
		tab2 := openPage(t, browser, base, "people")
		dave.join("dave")
		tab1.join("carol")
		tab2.join("carol")
		checkPeople(t, dave, `[{"name":"carol","tabs":"×2","you":false},{"name":"dave","tabs":"","you":true}]`)
		checkPeople(t, tab1, `[{"name":"carol","tabs":"×2","you":true},{"name":"dave","tabs":"","you":false}]`)
		tab2.eval(`window.chat.client.disconnect()`) // as when the tab closes
		checkPeople(t, dave, `[{"name":"carol","tabs":"","you":false},{"name":"dave","tabs":"","you":true}]`)
		checkPeople(t, tab1, `[{"name":"carol","tabs":"","you":true},{"name":"dave","tabs":"","you":false}]`)
	})

	t.Run("NicknameRememberedAndRoomFromHash", func(t *testing.T) {
		t.Parallel()
		p := openPage(t, browser, base, "hash-a")
		p.join("hana")
		p.send("in room a")

		// A reload joins at once with the remembered nickname.
		p.do(chromedp.Reload())
		p.waitJS("rejoined as hana", `document.getElementById('nick').value === 'hana' &&
			window.chat.subscription && window.chat.subscription.channel === 'chat:hash-a' &&
			window.chat.subscription.state === 'subscribed'`)
		p.waitMessages([]msg{{"hana", "in room a"}})

		// Changing the hash switches the room.
		p.eval(`location.hash = '#hash-b'`)
		p.waitJS("in room b", `window.chat.subscription.channel === 'chat:hash-b' &&
			window.chat.subscription.state === 'subscribed' &&
			document.getElementById('room-name').textContent === 'hash-b'`)
		p.waitMessages([]msg{})
		p.send("in room b")
		p.waitMessages([]msg{{"hana", "in room b"}})
		p.waitOnline("hana")
	})

	t.Run("PhoneWidth", func(t *testing.T) {
		t.Parallel()
		p := openPage(t, browser, base, "phone")
		p.do(chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
		p.join("pia")
		p.send("a long message without spaces: " + strings.Repeat("x", 200))
		p.waitJS("no horizontal scrolling at 360px", `document.documentElement.scrollWidth <= window.innerWidth`)
		p.waitJS("composer visible", `(() => {
			const r = document.getElementById('send').getBoundingClientRect();
			return r.width > 0 && r.right <= window.innerWidth && r.bottom <= window.innerHeight;
		})()`)
	})
}

// startServer runs a redcast server with the default configuration on a
// random local port and returns its address.
func startServer(t *testing.T) string {
	t.Helper()
	return startServerWith(t, server.Config{})
}

// startServerWith starts a server with cfg on a random local port and
// returns its address.
func startServerWith(t *testing.T, cfg server.Config) string {
	t.Helper()
	addr, _ := testserver.Start(t, cfg)
	return addr
}

// TestChatPageAcrossRedisNodes: two users of the chat page on two nodes
// that share a real Redis see each other's messages and each other online.
func TestChatPageAcrossRedisNodes(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	var bases []string
	for range 2 {
		rb, err := redis.New(t.Context(), redis.Config{URL: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, "http://"+startServerWith(t, server.Config{Broker: rb, Presence: rb}))
	}
	browser := startBrowser(t)
	alice := openPage(t, browser, bases[0], "nodes")
	bob := openPage(t, browser, bases[1], "nodes")
	alice.join("alice")
	bob.join("bob")
	alice.send("hi from node 1")
	bob.send("hi from node 2")
	want := []msg{{"alice", "hi from node 1"}, {"bob", "hi from node 2"}}
	alice.waitMessages(want)
	bob.waitMessages(want)
	alice.waitOnline("alice", "bob")
	bob.waitOnline("alice", "bob")
}

// startBrowser starts headless Chromium and returns a context whose children
// open tabs in it. The browser stops when the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t)
}

// page is one chat page in its own browser context.
type page struct {
	t    *testing.T
	ctx  context.Context
	name string // the nickname, once joined; for failure messages

	mu       sync.Mutex
	problems []string // exceptions and console errors of the page
	expected []string // substrings of console errors the test causes on purpose
}

// msg is a message as the page shows it.
type msg struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// openPage opens the chat page at /#room in a new browser context.
func openPage(t *testing.T, browser context.Context, base, room string) *page {
	t.Helper()
	p := newPage(t, browser)
	p.do(chromedp.Navigate(base + "/#" + room))
	p.waitJS("the room taken from the URL", fmt.Sprintf(`document.getElementById('room').value === %s`, jsString(room)))
	return p
}

// newPage opens a blank tab in a new browser context. The test fails if the
// tab throws, logs an error or opens a dialog.
func newPage(t *testing.T, browser context.Context) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	p := &page{t: t, ctx: ctx, name: "page"}
	t.Cleanup(cancel)
	// Registered after cancel, so it runs before it.
	t.Cleanup(p.checkProblems)

	console := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				p.problem(fmt.Sprintf("%s (%s)", m, m.URL))
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			p.problem(fmt.Sprintf("a %s dialog opened: %q", ev.Type, ev.Message))
		}
	}()
	return p
}

func (p *page) problem(s string) {
	p.mu.Lock()
	p.problems = append(p.problems, s)
	p.mu.Unlock()
}

func (p *page) checkProblems() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.problems {
		if !slices.ContainsFunc(p.expected, func(e string) bool { return strings.Contains(s, e) }) {
			p.t.Errorf("%s's page: %s", p.name, s)
		}
	}
}

// expect makes console errors that contain substr not fail the test: the
// test causes them on purpose (a cut connection, a refused request).
func (p *page) expect(substr string) {
	p.mu.Lock()
	p.expected = append(p.expected, substr)
	p.mu.Unlock()
}

// do runs actions in the page, bounded by waitTimeout.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s's page: %v\n%s", p.name, err, p.dump())
	}
}

// eval evaluates a JavaScript expression in the page, awaiting a promise.
func (p *page) eval(expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr, chromedp.EvalAwaitPromise)); err != nil {
		p.t.Fatalf("%s's page: evaluating %s: %v", p.name, expr, err)
	}
}

// waitJS polls a JavaScript condition until it holds or waitTimeout passes.
func (p *page) waitJS(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		p.t.Fatalf("%s's page: waiting for %s: %v\n%s", p.name, what, err, p.dump())
	}
}

// join picks a nickname, joins the room and waits until subscribed.
func (p *page) join(nick string) {
	p.t.Helper()
	p.name = nick
	p.do(chromedp.SetValue(chromedp.ID("nick"), nick), chromedp.Click(chromedp.ID("join")))
	p.waitJS("joined", `document.getElementById('status').dataset.state === 'connected' &&
		window.chat.subscription && window.chat.subscription.state === 'subscribed'`)
}

// send types a message, sends it and waits until the server acknowledged it.
func (p *page) send(text string) {
	p.t.Helper()
	p.do(chromedp.SetValue(chromedp.ID("message"), text), chromedp.Click(chromedp.ID("send")))
	p.waitJS("the message acknowledged", `document.getElementById('message').value === '' &&
		document.getElementById('send-error').textContent === ''`)
}

const messagesJS = `[...document.querySelectorAll('#messages .msg')].map((m) =>
	({from: m.querySelector('.from').textContent, text: m.querySelector('.text').textContent}))`

// messages returns the messages the page shows, in order.
func (p *page) messages() []msg {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]msg](messagesJS))
	if err != nil {
		p.t.Fatalf("%s's page: reading messages: %v", p.name, err)
	}
	return got
}

// waitMessages waits until the page shows exactly want, in order.
func (p *page) waitMessages(want []msg) {
	p.t.Helper()
	b, _ := json.Marshal(want)
	p.waitJS(fmt.Sprintf("messages %s", b), fmt.Sprintf(`JSON.stringify(%s) === JSON.stringify(%s)`, messagesJS, b))
}

// waitBreak waits until the page, back after a gap history did not cover,
// shows at index at of its n items the line where messages may be
// missing, and the notice that says so to a person.
func (p *page) waitBreak(at, n int) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf("%d items, a line where messages are missing at %d", n, at), fmt.Sprintf(`(() => {
		const items = [...document.querySelectorAll('#messages > li')];
		return items.length === %d && items[%d].classList.contains('break');
	})()`, n, at))
	p.waitJS("the notice", `!document.getElementById('notice').hidden &&
		document.getElementById('notice-text').textContent.includes('could not be loaded')`)
}

// waitOnline waits until the online list holds exactly these names.
func (p *page) waitOnline(names ...string) {
	p.t.Helper()
	b, _ := json.Marshal(names)
	p.waitJS(fmt.Sprintf("online %s", b), fmt.Sprintf(
		`JSON.stringify([...document.querySelectorAll('#presence .member .name')].map((e) => e.textContent).sort()) === JSON.stringify(%s)`,
		b))
}

// dump describes the page's state, for failure messages.
func (p *page) dump() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		status: document.getElementById('status').textContent,
		notice: document.getElementById('notice').hidden ? '' : document.getElementById('notice-text').textContent,
		sendError: document.getElementById('send-error').textContent,
		online: [...document.querySelectorAll('#presence .member .name')].map((e) => e.textContent),
		messages: `+messagesJS+`.map((m) => m.from + ': ' + m.text),
	}, null, 1)`))
	if err != nil {
		return fmt.Sprintf("(no page state: %v)", err)
	}
	return "page state: " + s
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// plainClient is a plain-mode WebSocket client: text frames in and out.
type plainClient struct {
	t    *testing.T
	conn net.Conn
	rw   io.ReadWriter
}

func dialPlain(t *testing.T, url string) *plainClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var r io.Reader = conn
	if br != nil {
		// The server's first frames may have arrived with the handshake.
		r = io.MultiReader(br, conn)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{r, conn}
	return &plainClient{t: t, conn: conn, rw: rw}
}

func (c *plainClient) send(text string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := wsutil.WriteClientText(c.conn, []byte(text)); err != nil {
		c.t.Fatalf("plain client: sending: %v", err)
	}
}

func (c *plainClient) read() string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := wsutil.ReadServerText(c.rw)
	if err != nil {
		c.t.Fatalf("plain client: reading: %v", err)
	}
	return string(b)
}
