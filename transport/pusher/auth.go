package pusher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// Errors of authorize, sent to the client in pusher:subscription_error.
var (
	errNoAuth        = errors.New("this channel needs an auth signature")
	errBadAuth       = errors.New("invalid signature: expected HMAC-SHA256 hex digest of socket_id:channel, with the app key")
	errBadPresence   = errors.New("invalid signature: expected HMAC-SHA256 hex digest of socket_id:channel:channel_data, with the app key")
	errNoChannelData = errors.New("a presence channel needs channel_data")
)

// authorize checks that the client may subscribe: public channels are
// open; private ones (encrypted ones included, whose payloads the server
// passes through) need an auth string "key:signature", the signature
// being the hex HMAC-SHA256 of "socket_id:channel" under the app's secret;
// presence ones sign "socket_id:channel:channel_data".
func (s *session) authorize(d subscribeData) error {
	presence := strings.HasPrefix(d.Channel, presencePrefix)
	switch {
	case !presence && !strings.HasPrefix(d.Channel, privatePrefix):
		return nil
	case d.Auth == "":
		return errNoAuth
	case !presence:
		if !validSignature(s.app, d.Auth, s.client.ID()+":"+d.Channel) {
			return errBadAuth
		}
		return nil
	case d.ChannelData == "":
		return errNoChannelData
	case !validSignature(s.app, d.Auth, s.client.ID()+":"+d.Channel+":"+d.ChannelData):
		return errBadPresence
	}
	return nil
}

// validSignature reports whether auth is "key:signature" with the app's key
// and the signature of msg under its secret.
func validSignature(app *App, auth, msg string) bool {
	key, sig, ok := strings.Cut(auth, ":")
	if !ok || key != app.Key {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	return hmac.Equal(got, sign(app.Secret, msg))
}

// sign returns the HMAC-SHA256 of msg under secret.
func sign(secret, msg string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return m.Sum(nil)
}
