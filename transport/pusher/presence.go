package pusher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redcast/redcast/protocol"
)

// This file is Pusher's presence channels: members by user, read from the
// node's presence (the cluster's, on Redis), and member_added and
// member_removed as redcast tells users entering and leaving
// (Node.OnUserPresence): once per cluster, on the node that saw it.

// Limits of channel_data, Pusher's.
const (
	maxUserIDLength = 128
	maxUserInfo     = 1 << 10
)

// Events of presence channels.
const (
	eventMemberAdded   = "pusher_internal:member_added"
	eventMemberRemoved = "pusher_internal:member_removed"
)

// isMemberEvent reports whether a publication is a member event (which
// redcast writes, in the canonical form of envelopes).
func isMemberEvent(data []byte) bool {
	event, _, _, ok := cutEnvelope(data)
	return ok && (string(event) == `"`+eventMemberAdded+`"` || string(event) == `"`+eventMemberRemoved+`"`)
}

// presenceTimeout bounds the read of a channel's members.
const presenceTimeout = 5 * time.Second

// channelData is the channel_data of a presence subscribe, which the
// signature covers.
type channelData struct {
	UserID   json.RawMessage `json:"user_id"` // a string or a number
	UserInfo json.RawMessage `json:"user_info,omitempty"`
}

// parseChannelData returns the user of a presence subscribe's channel_data.
func parseChannelData(s string) (user string, info json.RawMessage, err error) {
	var d channelData
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return "", nil, fmt.Errorf("channel_data is not a JSON object")
	}
	if err := json.Unmarshal(d.UserID, &user); err != nil {
		var n json.Number
		if json.Unmarshal(d.UserID, &n) != nil {
			return "", nil, fmt.Errorf("channel_data needs a user_id, a string or a number")
		}
		user = n.String()
	}
	switch {
	case user == "" || len(user) > maxUserIDLength:
		return "", nil, fmt.Errorf("user_id must be 1 to %d bytes", maxUserIDLength)
	case len(d.UserInfo) > maxUserInfo:
		return "", nil, fmt.Errorf("user_info larger than %d bytes", maxUserInfo)
	}
	return user, d.UserInfo, nil
}

// members is a presence channel's members as subscription_succeeded
// lists them.
type members struct {
	ids  []string
	hash map[string]json.RawMessage
}

// errMemberLimit refuses a presence subscribe over MaxPresenceMembers.
var errMemberLimit = errors.New("pusher: member limit")

// readMembers reads the users in a channel's presence.
func (s *session) readMembers(ctx context.Context, ch string) (*members, error) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	infos, err := s.h.node.Presence(ctx, ch)
	if err != nil {
		return nil, err
	}
	m := &members{hash: make(map[string]json.RawMessage)}
	for _, info := range infos {
		if user, ok := s.app.pusherUser(info.User); ok {
			m.add(user, info.Info)
		}
	}
	return m, nil
}

// add adds a user unless it is there already. Only the app's users are
// members: redcast's own clients (anonymous or with a user of their own)
// are not.
func (m *members) add(user string, info json.RawMessage) {
	if _, ok := m.hash[user]; ok || user == "" {
		return
	}
	if len(info) == 0 {
		info = json.RawMessage("null")
	}
	m.ids = append(m.ids, user)
	m.hash[user] = info
}

// data returns the data of subscription_succeeded.
func (m *members) data() json.RawMessage {
	type presence struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	}
	b, _ := json.Marshal(struct {
		Presence presence `json:"presence"`
	}{presence{m.ids, m.hash, len(m.ids)}}) // valid JSON only: cannot fail
	return jsonString(b)
}

// userPresence publishes member_added when a user enters a presence
// channel of an app, and member_removed when it leaves, to the channel's
// subscribers on every node but the connection that made the change.
func (h *Handler) userPresence(ctx context.Context, ch string, entered bool, info *protocol.ClientInfo) {
	ns, _, ok := strings.Cut(ch, string(protocol.NamespaceSeparator))
	if !ok {
		return
	}
	app := h.byPresenceNS[ns]
	if app == nil {
		return
	}
	user, ok := app.pusherUser(info.User)
	if !ok {
		return
	}
	event, member := eventMemberRemoved, struct {
		UserID   string          `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info,omitempty"`
	}{UserID: user}
	if entered {
		event, member.UserInfo = eventMemberAdded, info.Info
	}
	data, _ := json.Marshal(member) // valid JSON only: cannot fail
	if _, err := h.node.PublishExcept(ctx, ch, publicationData(event, jsonString(data), ""), info.Client); err != nil {
		h.log.Warn("pusher: publish "+event+" failed", "channel", ch, "user", user, "err", err)
	}
}
