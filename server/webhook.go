package server

import (
	"errors"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/webhook"
)

// Webhook configures redcast's own webhooks (see docs/webhooks.md).
type Webhook struct {
	// URL receives the events; empty: no webhooks.
	URL string
	// Secret signs each POST: X-Redcast-Signature is the hex
	// HMAC-SHA256 of the body with it. Required with URL.
	Secret string
}

// nativeEvent is one event of redcast's own webhooks.
type nativeEvent struct {
	Name    string `json:"name"`
	Channel string `json:"channel,omitempty"`
	User    string `json:"user"`
	Client  string `json:"client,omitempty"`
	// Code is connection_closed's disconnect code (0: the client or the
	// network closed the connection).
	Code *uint16 `json:"code,omitempty"`
}

// Names of the events of redcast's own webhooks.
const (
	eventChannelOccupied  = "channel_occupied"
	eventChannelVacated   = "channel_vacated"
	eventPresenceJoin     = "presence_join"
	eventPresenceLeave    = "presence_leave"
	eventConnectionOpened = "connection_opened"
	eventConnectionClosed = "connection_closed"
)

// errWebhookSecret refuses a webhook URL without a secret.
var errWebhookSecret = errors.New("server: a webhook URL needs a secret")

// startWebhook sends redcast's own webhooks of every channel of node to
// cfg.URL, through sender.
func startWebhook(node *redcast.Node, sender *webhook.Sender, cfg Webhook) error {
	if cfg.URL == "" {
		return nil
	}
	if cfg.Secret == "" {
		return errWebhookSecret
	}
	t, err := sender.Target("native", cfg.URL, webhook.NativeSigner(cfg.Secret))
	if err != nil {
		return err
	}
	// The channels of namespaces with "webhooks": false are left out.
	wanted := func(ch string) bool {
		ns, err := node.Namespace(ch)
		return err == nil && !ns.NoWebhooks
	}
	node.OnLifecycle(redcast.Lifecycle{
		Track: wanted,
		Occupancy: func(ch string, occupied bool) {
			name := eventChannelVacated
			if occupied {
				name = eventChannelOccupied
			}
			t.Send(nativeEvent{Name: name, Channel: ch})
		},
		User: func(ch string, entered bool, info *protocol.ClientInfo) {
			if !wanted(ch) {
				return
			}
			name := eventPresenceLeave
			if entered {
				name = eventPresenceJoin
			}
			t.Send(nativeEvent{Name: name, Channel: ch, User: info.User, Client: info.Client})
		},
		Connection: func(info protocol.ClientInfo, opened bool, code uint16) {
			ev := nativeEvent{Name: eventConnectionOpened, User: info.User, Client: info.Client}
			if !opened {
				ev.Name, ev.Code = eventConnectionClosed, &code
			}
			t.Send(ev)
		},
	})
	return nil
}
