package web_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/broker/redis"
	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/internal/testredis"
	"github.com/redcast/redcast/server"
)

// TestAdminPage: the status page refuses a wrong API key, then with the
// right one shows both nodes of a Redis deployment, their connections, the
// busiest channel summed over the nodes, and publications as they flow.
func TestAdminPage(t *testing.T) {
	const key = "admin-test-key-0123456789"
	rs := testredis.Start(t, testredis.Options{})
	var addrs []string
	for i := range 2 {
		rb, err := redis.New(t.Context(), redis.Config{URL: rs.URL()})
		if err != nil {
			t.Fatal(err)
		}
		cfg := server.Config{Broker: rb, Presence: rb, APIKey: key, Node: redcast.Config{
			NodeName: []string{"node-a", "node-b"}[i], NodeInfoInterval: 200 * time.Millisecond,
		}}
		addrs = append(addrs, startServerWith(t, cfg))
	}
	ctx := t.Context()
	var pub *client.Client
	for i, addr := range []string{addrs[0], addrs[0], addrs[1]} {
		c, err := client.Dial(ctx, "ws://"+addr+"/connection/websocket", client.Options{Name: "watcher"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Subscribe(ctx, "chat:adm", client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			pub = c
		}
	}

	browser := startBrowser(t)
	p := newPage(t, browser)
	p.name = "admin"
	p.expect("401") // the wrong key's request, logged by the browser
	p.do(chromedp.Navigate("http://" + addrs[1] + "/admin"))
	p.do(chromedp.SetValue(chromedp.ID("key"), "wrong"), chromedp.Click(chromedp.ID("show")))
	p.waitJS("the wrong key refused", `document.getElementById('status').textContent === 'wrong API key' &&
		document.getElementById('panels').hidden`)

	p.do(chromedp.SetValue(chromedp.ID("key"), key), chromedp.Click(chromedp.ID("show")))
	p.waitJS("both nodes and their connections", `(() => {
		const text = (id) => document.getElementById(id).textContent;
		const names = [...document.querySelectorAll('#nodes tbody tr td:first-child')].map((td) => td.textContent);
		const row = document.querySelector('#channels tr[data-channel="chat:adm"]');
		return !document.getElementById('panels').hidden && text('total-nodes') === '2' &&
			names.join() === 'node-a,node-b' && text('total-connections') === '3' &&
			row && row.cells[1].textContent === '3';
	})()`)

	// Publications show as a rate while they flow.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pub.Publish(ctx, "chat:adm", map[string]string{"text": "tick"}); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // a steady trickle, not a flood
		}
	}()
	p.waitJS("a publication rate", `Number(document.getElementById('total-pubs').textContent.replace(/,/g, '')) > 0 &&
		Number(document.getElementById('total-pushes').textContent.replace(/,/g, '')) > 0`)
	close(stop)
	<-done
}
