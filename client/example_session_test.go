package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/redcast/redcast/client"
	"github.com/redcast/redcast/protocol"
)

// This example subscribes through a Session, which reconnects by itself and
// recovers what its subscriptions missed.
func ExampleConnect() {
	url, stop := startServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := client.Connect(ctx, url, client.SessionOptions{Conn: client.Options{Name: "alice"}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// Handlers run one at a time, in order, on the session's delivery
	// goroutine.
	done := make(chan struct{})
	_, err = s.Subscribe(ctx, "chat:general", client.SubscribeOptions{History: 10}, client.Handlers{
		OnSubscribed: func(e client.SubscribedEvent) {
			fmt.Println("subscribed at offset", e.Position.Offset)
		},
		OnPublication: func(e client.PublicationEvent) {
			fmt.Printf("%d %s\n", e.Offset, e.Data)
			if e.Offset == 2 {
				close(done)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, text := range []string{"hi", "bye"} {
		if _, err := s.Publish(ctx, "chat:general", map[string]string{"text": text}); err != nil {
			log.Fatal(err)
		}
	}
	<-done
	// Output:
	// subscribed at offset 0
	// 1 {"text":"hi"}
	// 2 {"text":"bye"}
}

// This example restarts the server under a session. The session follows
// the server's advice to reconnect, subscribes again and, since the new
// server's memory broker does not have the old stream, reports that
// recovery failed so that the application can reload.
func ExampleSubscribedEvent_RecoveryFailed() {
	url, stop := startServer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := client.Connect(ctx, url, client.SessionOptions{
		BaseDelay: 10 * time.Millisecond,
		MaxDelay:  100 * time.Millisecond,
		OnDisconnect: func(e client.DisconnectEvent) {
			// Also called for each failed attempt to reconnect.
			var d protocol.Disconnect
			if errors.As(e.Err, &d) {
				fmt.Println("disconnected:", d.Reason)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	resubscribed := make(chan struct{})
	_, err = s.Subscribe(ctx, "news", client.SubscribeOptions{History: 10}, client.Handlers{
		OnSubscribed: func(e client.SubscribedEvent) {
			switch {
			case e.RecoveryFailed():
				fmt.Println("publications were missed: reload")
				close(resubscribed)
			case e.Recovering:
				fmt.Println("recovered")
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	stop() // every client gets disconnect 3001: reconnect later
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/connection/websocket")
	_, stop = startServerOn(addr) // a new server on the same address
	<-resubscribed
	s.Close()
	stop()
	// Output:
	// disconnected: server shutting down
	// publications were missed: reload
}

// This example resumes a subscription in a new session from the position
// an earlier one reached, as a process does across restarts.
func ExampleSubscription_Position() {
	url, stop := startServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := client.Connect(ctx, url, client.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := s.Subscribe(ctx, "news", client.SubscribeOptions{}, client.Handlers{})
	if err != nil {
		log.Fatal(err)
	}
	saved := sub.Position() // store it somewhere durable
	s.Close()

	for _, text := range []string{"one", "two"} { // published while away
		if _, err := publishOnce(ctx, url, "news", text); err != nil {
			log.Fatal(err)
		}
	}

	s, err = client.Connect(ctx, url, client.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	_, err = s.Subscribe(ctx, "news", client.SubscribeOptions{Since: &saved}, client.Handlers{
		OnSubscribed: func(e client.SubscribedEvent) {
			fmt.Println("recovered:", e.Recovered)
		},
		OnPublication: func(e client.PublicationEvent) {
			fmt.Println(e.Offset, string(e.Data))
			if e.Offset == 2 {
				close(done)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output:
	// recovered: true
	// 1 "one"
	// 2 "two"
}

// publishOnce publishes data on a connection of its own.
func publishOnce(ctx context.Context, url, channel string, data any) (protocol.StreamPosition, error) {
	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		return protocol.StreamPosition{}, err
	}
	defer c.Close()
	return c.Publish(ctx, channel, data)
}
