package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/internal/wait"
)

// TestChatPageAfterNodeCrash: Alice's node dies (kill -9) while Bob, on
// another node, watches the room. Bob's list drops Alice within the
// presence TTL. Then her node dies again and comes back at once: both
// pages list each person once (her page never shows her old connection;
// Bob's shows it as a second connection of hers until it expires), and
// after the TTL, without a reload, both list exactly alice and bob.
func TestChatPageAfterNodeCrash(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{})
	// Long enough that a quick restart reconnects before the old
	// connection's entry expires (at least two thirds of it after the kill).
	const ttl = 3 * time.Second
	args := []string{"--redis", rs.URL(), "--presence-ttl", ttl.String()}
	bin := buildRedcast(t)
	a, b := startNode(t, bin, args...), startNode(t, bin, args...)
	browser := startBrowser(t)
	alice := openPage(t, browser, "http://"+a.addr, "crash")
	bob := openPage(t, browser, "http://"+b.addr, "crash")
	alice.expect("WebSocket") // her connection is cut, and refused while her node is down
	alice.join("alice")
	bob.join("bob")
	alice.waitOnline("alice", "bob")
	bob.waitOnline("alice", "bob")

	a.kill()
	killed := time.Now()
	bob.waitOnline("bob")
	if took := time.Since(killed); took > ttl+time.Second {
		t.Errorf("alice left Bob's list %v after her node died, want within the presence TTL %v", took, ttl)
	}
	checkPeople(t, bob, `[{"name":"bob","tabs":"","you":true}]`)

	a.restart()
	alice.eval(`window.chat.client.reconnect()`) // not after the backoff of 2 s down
	alice.waitJS("alice reconnected", `window.chat.subscription.state === 'subscribed'`)
	alice.waitOnline("alice", "bob")
	bob.waitOnline("alice", "bob")

	// The quick restart: her page reconnects, with a new connection,
	// before the old one expires. No page ever lists a person twice.
	for _, p := range []*page{alice, bob} {
		watchDuplicates(p)
	}
	a.kill()
	killed = time.Now()
	a.restart()
	alice.waitJS("alice reconnected", `document.getElementById('status').dataset.state === 'connected' &&
		window.chat.subscription.state === 'subscribed'`)
	for _, p := range []*page{alice, bob} {
		p.waitOnline("alice", "bob") // one row each, whatever the connections
	}
	checkPeople(t, alice, `[{"name":"alice","tabs":"","you":true},{"name":"bob","tabs":"","you":false}]`)
	bob.waitJS("alice's old connection gone from Bob's list", `!document.querySelector('#presence .member .tabs')`)
	if took := time.Since(killed); took > ttl+time.Second {
		t.Errorf("Bob listed alice's old connection %v after her node died, want within the presence TTL %v", took, ttl)
	}
	checkPeople(t, bob, `[{"name":"alice","tabs":"","you":false},{"name":"bob","tabs":"","you":true}]`)
	for _, p := range []*page{alice, bob} {
		p.waitJS("no person listed twice", `window.maxSameName === 1`)
	}
}

// watchDuplicates makes the page keep in window.maxSameName the most rows
// of its online list that ever had one name.
func watchDuplicates(p *page) {
	p.eval(`(() => {
		const list = document.getElementById('presence');
		const check = () => {
			const names = [...list.querySelectorAll('.member .name')].map((e) => e.textContent);
			for (const n of names) {
				window.maxSameName = Math.max(window.maxSameName || 0, names.filter((m) => m === n).length);
			}
		};
		check();
		new MutationObserver(check).observe(list, {childList: true, subtree: true});
	})()`)
}

// checkPeople fails t unless the page's online list is want (JSON) and its
// count says how many people.
func checkPeople(t *testing.T, p *page, want string) {
	t.Helper()
	p.waitJS("online list "+want, fmt.Sprintf(`(() => {
		const got = [...document.querySelectorAll('#presence .member')].map((li) => ({
			name: li.querySelector('.name').textContent,
			tabs: li.querySelector('.tabs')?.textContent ?? '',
			you: li.classList.contains('me'),
		}));
		return JSON.stringify(got) === JSON.stringify(%s) &&
			document.getElementById('online-count').textContent === String(got.length);
	})()`, want))
}

// buildRedcast builds cmd/redcast into a directory of the test.
func buildRedcast(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "redcast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/redcast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// node is a redcast node running as a process, on a fixed loopback
// address so that it can be restarted where its clients reconnect.
type node struct {
	t    *testing.T
	bin  string
	args []string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// startNode runs the redcast binary bin with args on a free loopback port and
// waits until it serves. It is killed when the test ends.
func startNode(t *testing.T, bin string, args ...string) *node {
	t.Helper()
	n := &node{t: t, bin: bin, args: args, addr: testserver.FreeAddr(t)}
	n.restart()
	t.Cleanup(n.kill)
	return n
}

// restart starts the process (again) and waits until it answers /healthz.
func (n *node) restart() {
	n.t.Helper()
	cmd := exec.Command(n.bin, append([]string{"--addr", n.addr}, n.args...)...)
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	wait.For(n.t, "redcast serving on "+n.addr, func() bool {
		select {
		case <-done:
			n.t.Fatalf("redcast exited before serving on %s", n.addr)
		default:
		}
		ctx, cancel := context.WithTimeout(n.t.Context(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// kill stops the process with SIGKILL (no cleanup of any kind) and waits
// until it is gone.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// TestChatPageAfterRestart: a server without Redis restarts and forgets the
// room. The page keeps the conversation on screen, marks where messages may
// be missing, tells the person in plain words, and shows what is said after
// the restart although its offsets start again from 1. Retry now
// reconnects at once.
func TestChatPageAfterRestart(t *testing.T) {
	n := startNode(t, buildRedcast(t))
	browser := startBrowser(t)
	p := openPage(t, browser, "http://"+n.addr, "restart")
	p.expect("WebSocket") // refused while the server is down
	p.join("rosa")
	p.send("before 1")
	p.send("before 2")
	before := []msg{{"rosa", "before 1"}, {"rosa", "before 2"}}
	p.waitMessages(before)

	n.kill()
	p.waitJS("a retry button while the server is down", `!document.getElementById('retry').hidden &&
		document.getElementById('status').dataset.state === 'connecting'`)
	n.restart()
	// Not after the backoff, unless the page got there first.
	p.eval(`(() => { const b = document.getElementById('retry'); if (!b.hidden) b.click(); })()`)
	p.waitJS("back", `document.getElementById('status').dataset.state === 'connected' &&
		window.chat.subscription.state === 'subscribed'`)
	p.waitBreak(2, 3)
	p.send("after")
	p.waitMessages(append(before, msg{"rosa", "after"}))
}
