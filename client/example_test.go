package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/server"
)

// startServer runs a redcast server on a random local port for the examples
// and returns its full-protocol URL and a function that stops it.
func startServer() (url string, stop func()) {
	return startServerOn("127.0.0.1:0")
}

// startServerOn is startServer on addr.
func startServerOn(addr string) (url string, stop func()) {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	return "ws://" + ln.Addr().String() + "/connection/websocket", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}
}

func Example() {
	url, stop := startServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// OnPush runs on the client's reader goroutine: hand pushes over
	// without blocking it.
	pubs := make(chan *protocol.Publication, 16)
	c, err := client.Dial(ctx, url, client.Options{
		Name: "alice",
		OnPush: func(p *protocol.Push) {
			if p.Type == protocol.PushPublication {
				pubs <- p.Pub
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Subscribe(ctx, "chat:general", client.SubscribeOptions{History: 10})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("subscribed at offset", res.Offset)

	pos, err := c.Publish(ctx, "chat:general", map[string]string{"text": "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published at offset", pos.Offset)

	pub := <-pubs
	fmt.Printf("received %s at offset %d\n", pub.Data, pub.Offset)

	// Errors answered by the server are *protocol.Error values.
	_, err = c.Subscribe(ctx, "chat:general", client.SubscribeOptions{})
	fmt.Println(errors.Is(err, protocol.ErrAlreadySubscribed))
	// Output:
	// subscribed at offset 0
	// published at offset 1
	// received {"text":"hi"} at offset 1
	// true
}

// This example resumes a subscription on a new connection: subscribing with
// Since returns every publication missed in between.
func ExampleClient_Subscribe_recover() {
	url, stop := startServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Subscribe(ctx, "news", client.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	// The position to resume from: the subscribe result's, then that of
	// every publication handled.
	last := protocol.StreamPosition{Offset: res.Offset, Epoch: res.Epoch}
	c.Close()

	other, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	for _, text := range []string{"one", "two"} {
		if _, err := other.Publish(ctx, "news", text); err != nil {
			log.Fatal(err)
		}
	}

	c, err = client.Dial(ctx, url, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err = c.Subscribe(ctx, "news", client.SubscribeOptions{Since: &last, History: 10})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recovered:", res.Recovered)
	for _, p := range res.Publications {
		fmt.Println(p.Offset, string(p.Data))
	}
	// Output:
	// recovered: true
	// 1 "one"
	// 2 "two"
}

// This example tells a disconnect decided by the server from a lost
// connection, and whether the server advises reconnecting.
func ExampleClient_Err() {
	url, stop := startServer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	stop() // the server shuts down: every client gets disconnect 3001
	<-c.Done()

	var d protocol.Disconnect
	if errors.As(c.Err(), &d) {
		fmt.Println(d.Code, d.Reason, "reconnect:", d.Reconnect())
	}
	// Output:
	// 3001 server shutting down reconnect: true
}
