package pusher

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
)

// This file is Pusher's user authentication: pusher:signin with user_data
// signed by the app's backend (pusher-js's signin(), the server SDKs'
// authenticateUser) makes the connection its user's.

// Events of user authentication.
const (
	eventSignin        = "pusher:signin"
	eventSigninSuccess = "pusher:signin_success"
	// serverToUserPrefix starts the channel pusher-js subscribes to once
	// signed in, for the HTTP API's events to a user (the SDKs'
	// sendToUser).
	serverToUserPrefix = "#server-to-user-"
)

// maxUserData is the most bytes of user_data: an id, user_info and a
// watchlist.
const maxUserData = 4 << 10

// signinData is the data of pusher:signin.
type signinData struct {
	Auth     string `json:"auth"`
	UserData string `json:"user_data"`
}

// userData is the part of user_data redcast reads.
type userData struct {
	ID       json.RawMessage `json:"id"`
	UserInfo json.RawMessage `json:"user_info,omitempty"`
}

// parseUserData returns the user of a signin's user_data: a JSON object
// with a non-empty string id.
func parseUserData(s string) (string, json.RawMessage, error) {
	if len(s) > maxUserData {
		return "", nil, fmt.Errorf("user_data larger than %d bytes", maxUserData)
	}
	var d userData
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return "", nil, fmt.Errorf("user_data is not a JSON object")
	}
	var id string
	switch {
	case d.ID == nil || json.Unmarshal(d.ID, &id) != nil:
		return "", nil, fmt.Errorf("user_data needs an id, a string")
	case id == "" || len(id) > maxUserIDLength:
		return "", nil, fmt.Errorf("user_data's id must be 1 to %d bytes", maxUserIDLength)
	case len(d.UserInfo) > maxUserInfo:
		return "", nil, fmt.Errorf("user_info larger than %d bytes", maxUserInfo)
	}
	return id, d.UserInfo, nil
}

// signin handles pusher:signin: auth must be "key:signature", the hex
// HMAC-SHA256 of "socket_id::user::user_data" under the app's secret. The
// connection becomes user_data's user and gets pusher:signin_success; a
// refused signin closes it with 4009, as Pusher does.
func (s *session) signin(m message) {
	var d signinData
	err := decodeData(m.Data, &d)
	var user string
	var info json.RawMessage
	switch {
	case err != nil:
	case !validSignature(s.app, d.Auth, s.client.ID()+"::user::"+d.UserData):
		err = fmt.Errorf("invalid signature: expected HMAC-SHA256 hex digest of socket_id::user::user_data, with the app key")
	default:
		if user, info, err = parseUserData(d.UserData); err == nil {
			err = s.setUser(user, info)
		}
	}
	if err != nil {
		msg := err.Error()
		if perr, _ := redcast.ProtocolError(err); perr != protocol.ErrInternal {
			msg = perr.Message
		}
		s.client.Disconnect(protocol.Disconnect{Code: codeUnauthorized, Reason: "Invalid signin: " + msg})
		return
	}
	s.signedIn = user
	data, _ := json.Marshal(struct {
		UserData string `json:"user_data"`
	}{d.UserData})
	s.send(encode(message{Event: eventSigninSuccess, Data: jsonString(data)}))
}

// isServerToUser reports whether ch is a channel of the events to a
// signed-in user, which pusher-js subscribes to after signin.
func isServerToUser(ch string) bool { return strings.HasPrefix(ch, serverToUserPrefix) }

// validateServerToUser checks the channel of the events to a user: a user
// id of 1 to maxUserIDLength bytes, which the app's redcast channel can
// hold (letters, digits and _ - . : @ / = , # ~).
func (a *App) validateServerToUser(ch string) error {
	user := strings.TrimPrefix(ch, serverToUserPrefix)
	switch {
	case user == "" || len(user) > maxUserIDLength:
		return fmt.Errorf("%w: the user id of %s must be 1 to %d bytes", errBadMessage, serverToUserPrefix, maxUserIDLength)
	case protocol.ValidateChannel(a.channel(ch)) != nil:
		return fmt.Errorf("%w: events to user %q are not supported: a user id of letters, digits and _ - . : @ / = , # ~ only", errBadMessage, user)
	}
	return nil
}
