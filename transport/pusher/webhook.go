package pusher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
	"github.com/redcast/redcast/webhook"
)

// This file is Pusher's webhooks: each app with a WebhookURL gets, signed
// with its key and secret (X-Pusher-Key, X-Pusher-Signature) and batched
// by the server's webhook machine (Config.Webhooks), the events Pusher
// sends: channel_occupied and channel_vacated (once per cluster, from the
// node's occupancy, redcast.Lifecycle), member_added and member_removed
// (once per cluster, by user), client_event and cache_miss (on the node
// that saw them). Channels are named as the app sees them.

// Names of Pusher's webhook events.
const (
	hookChannelOccupied = "channel_occupied"
	hookChannelVacated  = "channel_vacated"
	hookMemberAdded     = "member_added"
	hookMemberRemoved   = "member_removed"
	hookClientEvent     = "client_event"
	hookCacheMiss       = "cache_miss"
)

// hookEvent is one event of a Pusher webhook.
type hookEvent struct {
	Name     string `json:"name"`
	Channel  string `json:"channel"`
	Event    string `json:"event,omitempty"`
	Data     string `json:"data,omitempty"`
	SocketID string `json:"socket_id,omitempty"`
	UserID   string `json:"user_id,omitempty"`
}

// startWebhooks makes a webhook target of each app with a WebhookURL and
// listens to the node's transitions of the app's channels.
func (h *Handler) startWebhooks() error {
	h.webhooks = make(map[string]*webhook.Target)
	for i := range h.cfg.Apps {
		app := &h.cfg.Apps[i]
		if app.WebhookURL == "" {
			continue
		}
		if h.cfg.Webhooks == nil {
			return fmt.Errorf("%w: app %q has a webhook URL but the handler no webhook sender", ErrConfig, app.ID)
		}
		t, err := h.cfg.Webhooks.Target("pusher:"+app.ID, app.WebhookURL, webhook.PusherSigner(app.Key, app.Secret))
		if err != nil {
			return err
		}
		h.webhooks[app.ID] = t
		h.node.OnLifecycle(redcast.Lifecycle{
			Track: func(ch string) bool {
				_, ok := app.name(ch)
				return ok
			},
			Occupancy: func(ch string, occupied bool) {
				name, _ := app.name(ch)
				ev := hookEvent{Name: hookChannelVacated, Channel: name}
				if occupied {
					ev.Name = hookChannelOccupied
				}
				t.Send(ev)
			},
			User: func(ch string, entered bool, info *protocol.ClientInfo) {
				name, ok := app.name(ch)
				if !ok || !strings.HasPrefix(name, presencePrefix) {
					return
				}
				user, ok := app.pusherUser(info.User) // the app's users only
				if !ok {
					return
				}
				ev := hookEvent{Name: hookMemberRemoved, Channel: name, UserID: user}
				if entered {
					ev.Name = hookMemberAdded
				}
				t.Send(ev)
			},
		})
	}
	return nil
}

// name returns the Pusher name of a redcast channel of the app.
func (a *App) name(ch string) (string, bool) {
	ns, name, ok := strings.Cut(ch, string(protocol.NamespaceSeparator))
	if !ok || (ns != a.Namespace && ns != a.PresenceNamespace) || a.channel(name) != ch {
		return "", false
	}
	return name, true
}

// hookClientEvent sends client_event for a client event the session
// published: its data as the client sent it (a JSON string's value, or the
// JSON text), and user_id on presence channels.
func (s *session) hookClientEvent(m message, userID string) {
	t := s.h.webhooks[s.app.ID]
	if t == nil {
		return
	}
	data := string(m.Data)
	if d := bytes.TrimSpace(m.Data); len(d) > 0 && d[0] == '"' {
		_ = json.Unmarshal(d, &data)
	}
	t.Send(hookEvent{Name: hookClientEvent, Channel: m.Channel, Event: m.Event, Data: data, SocketID: s.client.ID(), UserID: userID})
}

// hookCacheMiss sends cache_miss for a subscribe to a cache channel that
// had no event to send.
func (s *session) hookCacheMiss(name string) {
	if t := s.h.webhooks[s.app.ID]; t != nil {
		t.Send(hookEvent{Name: hookCacheMiss, Channel: name})
	}
}
