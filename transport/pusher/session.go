package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/time/rate"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/hub"
	"github.com/redcast/redcast/outbox"
	"github.com/redcast/redcast/protocol"
)

// session is the protocol session of one Pusher connection: it turns the
// client's messages into the redcast client's subscribes, unsubscribes and
// publishes. The read loop calls HandleFrame and Flush, one at a time.
type session struct {
	h      *Handler
	app    *App
	client *redcast.Client
	out    *outbox.Outbox
	// subscribes limits pusher:subscribe as the node limits redcast's
	// subscribe; events limits client events (Pusher's 10 per second).
	subscribes, events *rate.Limiter
	// subscribed are the Pusher channels the client subscribed to (read
	// loop only): a client event on another is refused before it counts
	// against the rate.
	subscribed map[string]bool
	// user is the client's user once it signed in or entered a presence
	// channel (read loop only): client events on presence channels carry
	// it.
	user string
	// signedIn is the user the client signed in as (read loop only):
	// only it may subscribe to its user's channel (#server-to-user-).
	signedIn string
	// counted is whether the connection counts against its app's
	// MaxConnections (until Closed).
	counted bool
}

func newSession(h *Handler, app *App, c *redcast.Client, out *outbox.Outbox) *session {
	cfg := h.node.Config()
	return &session{
		h: h, app: app, client: c, out: out,
		subscribes: newLimiter(cfg.SubscribeRate, cfg.SubscribeBurst),
		events:     newLimiter(app.ClientEventRate, h.cfg.ClientEventBurst),
		subscribed: make(map[string]bool),
	}
}

// newLimiter returns a token bucket of perSecond (negative: no limit).
func newLimiter(perSecond float64, burst int) *rate.Limiter {
	if perSecond < 0 {
		return rate.NewLimiter(rate.Inf, burst)
	}
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// established sends pusher:connection_established, the connection's first
// message.
func (s *session) established() {
	data, _ := json.Marshal(struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}{s.client.ID(), int(s.h.cfg.ActivityTimeout.Seconds())})
	s.send(encode(message{Event: eventConnected, Data: jsonString(data)}))
}

// pongFrame answers pusher:ping. It is built once: outboxes only read the
// frames they queue, as they do the events shared by many clients.
var pongFrame = encode(message{Event: eventPong, Data: jsonString([]byte("{}"))})

// send queues msg, disconnecting the client as a slow consumer when its
// queue is full.
func (s *session) send(msg []byte) {
	if !s.out.Push(msg) {
		s.client.Disconnect(protocol.DisconnectSlowConsumer)
	}
}

// HandleFrame implements websocket.Session: one message of the client.
// What it sends waits in the outbox until Flush.
func (s *session) HandleFrame(frame []byte) {
	s.out.Hold()
	m, err := decodeMessage(frame)
	if err != nil {
		s.send(errorMessage(0, err.Error()))
		return
	}
	switch {
	case m.Event == eventPing:
		s.send(pongFrame)
	case m.Event == eventPong:
		// An answer to nothing the server asks: WebSocket pings keep
		// the connection alive.
	case m.Event == eventSubscribe:
		s.subscribe(m)
	case m.Event == eventSignin:
		s.signin(m)
	case m.Event == eventUnsubscribe:
		var d subscribeData
		if err := decodeData(m.Data, &d); err != nil || validateChannel(d.Channel) != nil {
			s.send(errorMessage(0, "pusher:unsubscribe needs a valid channel"))
			return
		}
		s.client.Unsubscribe(s.channel(d.Channel))
		delete(s.subscribed, d.Channel)
	case strings.HasPrefix(m.Event, clientEventPrefix):
		s.clientEvent(m)
	default:
		s.send(errorMessage(0, "Unsupported event "+m.Event))
	}
}

// Flush implements websocket.Session: it writes what HandleFrame queued.
func (s *session) Flush() { s.out.Release() }

// Closed is called once the connection ended (see websocket.Session): it
// is no longer the handler's, nor counts against its app's connections.
func (s *session) Closed() {
	s.h.untrack(s)
	if s.counted {
		s.h.conns[s.app].Add(-1)
	}
}

// channel returns the redcast channel of a Pusher channel of the app.
func (s *session) channel(name string) string { return s.app.channel(name) }

// subscriptionError is the data of pusher:subscription_error, as pusher-js
// reports its own authorization failures.
type subscriptionError struct {
	Type   string `json:"type"`
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func (s *session) subscriptionError(ch, typ, msg string, status int) {
	data, _ := json.Marshal(subscriptionError{Type: typ, Error: msg, Status: status})
	s.send(encode(message{Event: eventSubscriptionErr, Channel: ch, Data: data}))
}

// subscribe handles pusher:subscribe: authorization by the channel's
// prefix, then the redcast subscribe, whose reply is
// pusher_internal:subscription_succeeded.
func (s *session) subscribe(m message) {
	var d subscribeData
	if err := decodeData(m.Data, &d); err != nil {
		s.send(errorMessage(0, err.Error()))
		return
	}
	toUser := isServerToUser(d.Channel)
	switch {
	case toUser && len(d.Channel) <= maxChannelLength:
		if err := s.app.validateServerToUser(d.Channel); err != nil {
			s.subscriptionError(d.Channel, "ServerError", err.Error(), 400)
			return
		}
	default:
		if err := validateChannel(d.Channel); err != nil {
			s.send(errorMessage(0, err.Error()))
			return
		}
	}
	if !s.subscribes.Allow() {
		s.subscriptionError(d.Channel, "LimitReached", "too many subscribes: slow down", 429)
		return
	}
	if toUser && (s.signedIn == "" || d.Channel != serverToUserPrefix+s.signedIn) {
		s.subscriptionError(d.Channel, "AuthError", "only the connection signed in as the user may subscribe to its channel", 403)
		return
	}
	if err := s.authorize(d); err != nil {
		s.subscriptionError(d.Channel, "AuthError", err.Error(), 401)
		return
	}
	p := protocol.SubscribeParams{Channel: s.channel(d.Channel)}
	cache := isCache(d.Channel)
	if cache {
		p.History = 1
		if strings.HasPrefix(d.Channel, presencePrefix) {
			p.History = presenceCacheDepth // member events are publications too
		}
	}
	succeeded := jsonString([]byte("{}"))
	var (
		prepare func(context.Context) error
		member  json.RawMessage // the user_info of a presence channel's channel_data
	)
	if strings.HasPrefix(d.Channel, presencePrefix) {
		user, info, ok := s.enterPresence(d)
		if !ok {
			return
		}
		member = info
		if member == nil {
			member = json.RawMessage{} // this channel's: none, whatever another gave
		}
		// The members are read while the subscription holds back live
		// events: whoever enters or leaves after the read reaches the
		// client as member_added or member_removed after the list.
		prepare = func(ctx context.Context) error {
			m, err := s.readMembers(ctx, p.Channel)
			if err != nil {
				return err
			}
			if _, ok := m.hash[user]; !ok && len(m.ids) >= s.app.MaxPresenceMembers {
				return fmt.Errorf("%w: the channel has %d members, the most it holds", errMemberLimit, len(m.ids))
			}
			m.add(user, info)
			succeeded = m.data()
			return nil
		}
	}
	reply := func(res *protocol.SubscribeResult) {
		s.send(encode(message{Event: eventSubscribed, Channel: d.Channel, Data: succeeded}))
		if cache {
			s.sendCached(p.Channel, d.Channel, res)
		}
	}
	var err error
	if member != nil {
		err = s.client.SubscribeAuthorizedAs(p, member, prepare, reply)
	} else {
		err = s.client.SubscribeAuthorized(p, prepare, reply)
	}
	switch {
	case err == nil, errors.Is(err, protocol.ErrAlreadySubscribed):
		s.subscribed[d.Channel] = true
	case errors.Is(err, errMemberLimit):
		s.subscriptionError(d.Channel, "LimitReached", err.Error(), 403)
	case errors.Is(err, protocol.ErrLimitExceeded):
		s.subscriptionError(d.Channel, "LimitReached", err.Error(), 429)
	default:
		perr, _ := redcast.ProtocolError(err)
		s.subscriptionError(d.Channel, "ServerError", perr.Message, 500)
	}
}

// enterPresence prepares the subscribe of a presence channel: the client
// becomes the user of its channel_data, which it returns. It reports false
// when it refused the subscribe (with pusher:subscription_error).
func (s *session) enterPresence(d subscribeData) (string, json.RawMessage, bool) {
	user, info, err := parseChannelData(d.ChannelData)
	if err == nil {
		err = s.setUser(user, info)
	}
	if err != nil {
		perr, _ := redcast.ProtocolError(err)
		msg := err.Error()
		if perr != protocol.ErrInternal {
			msg = perr.Message
		}
		s.subscriptionError(d.Channel, "AuthError", msg, 403)
		return "", nil, false
	}
	return user, info, true
}

// setUser makes the connection the app's user (its redcast user being
// scoped to the app, App.scopedUser): once; another user than its first is
// refused.
func (s *session) setUser(user string, info json.RawMessage) error {
	if s.user != "" && s.user != user {
		return protocol.ErrPermissionDenied.WithMessage("the connection is user %q already", s.user)
	}
	if err := s.client.SetUser(s.app.scopedUser(user), info); err != nil {
		return err
	}
	s.user = user
	return nil
}

// isCache reports whether a channel is a cache channel (cache-,
// private-cache-, private-encrypted-cache-, presence-cache-).
func isCache(ch string) bool {
	for _, prefix := range []string{privateEncryptedPrefix, privatePrefix, presencePrefix} {
		if rest, ok := strings.CutPrefix(ch, prefix); ok {
			return strings.HasPrefix(rest, cachePrefix)
		}
	}
	return strings.HasPrefix(ch, cachePrefix)
}

// sendCached sends, after the subscribe reply of a cache channel, its last
// event (the subscribe read it from history; of a presence-cache- channel,
// the last that is not a member event), or pusher:cache_miss when it has
// none. It runs under the subscription's lock, before any live event.
func (s *session) sendCached(ch, name string, res *protocol.SubscribeResult) {
	for i := len(res.Publications) - 1; i >= 0; i-- {
		if isMemberEvent(res.Publications[i].Data) {
			continue
		}
		ev := &hub.Event{Channel: ch, Kind: hub.KindPublication, Pub: &res.Publications[i]}
		s.send(encodeEvent(ev))
		return
	}
	s.send(encode(message{Event: eventCacheMiss, Channel: name}))
	s.hookCacheMiss(name)
}
