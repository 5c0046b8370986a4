package pushertest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file signs as Pusher's server libraries sign: channel auth, signin
// and HTTP API requests. Tests of the Pusher endpoint use it (and Pusher's
// own SDK, in transport/pusher/testdata/js) rather than sign by hand.

// Sign returns the hex HMAC-SHA256 of msg under secret.
func Sign(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelAuth returns the auth of a private channel subscribe:
// "key:" and the signature of "socket_id:channel".
func ChannelAuth(key, secret, socketID, channel string) string {
	return key + ":" + Sign(secret, socketID+":"+channel)
}

// PresenceAuth returns the auth and channel_data of a presence subscribe
// of user with info (JSON), signed with the app's key and secret.
func PresenceAuth(key, secret, socketID, channel, user, info string) (auth, data string) {
	data = `{"user_id":"` + user + `","user_info":` + info + `}`
	return key + ":" + Sign(secret, socketID+":"+channel+":"+data), data
}

// SigninAuth returns the auth of pusher:signin with userData: the
// signature of "socket_id::user::user_data".
func SigninAuth(key, secret, socketID, userData string) string {
	return key + ":" + Sign(secret, socketID+"::user::"+userData)
}

// SignRequest returns the query of an HTTP API request signed with the
// app's key and secret at ts: q (not modified) with auth_key,
// auth_timestamp, auth_version, body_md5 (when body is not empty) and
// auth_signature.
func SignRequest(key, secret, method, path string, q url.Values, body []byte, ts time.Time) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = slices.Clone(v)
	}
	out.Set("auth_key", key)
	out.Set("auth_timestamp", strconv.FormatInt(ts.Unix(), 10))
	out.Set("auth_version", "1.0")
	if len(body) > 0 {
		sum := md5.Sum(body)
		out.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	keys := slices.Sorted(maps.Keys(out))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strings.ToLower(k) + "=" + out.Get(k)
	}
	out.Set("auth_signature", Sign(secret, method+"\n"+path+"\n"+strings.Join(parts, "&")))
	return out
}
