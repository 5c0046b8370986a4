package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testPolicy(t *testing.T) *Policy {
	t.Helper()
	ns := DefaultNamespaces()
	ns["members"] = Namespace{Subscribe: SubscribeAuthenticated, Publish: true, Presence: true, HistorySize: 10}
	ns["private"] = Namespace{Subscribe: SubscribeToken, Publish: true, PublishSubscribersOnly: true, Presence: true, HistorySize: 10}
	ns["news"] = Namespace{Anonymous: true, Subscribe: SubscribePublic}
	ns["closed"] = Namespace{}
	ns["dm"] = Namespace{Subscribe: SubscribeToken, Publish: true, HistorySize: 10, Presence: true}
	ns["odd"] = Namespace{Subscribe: "secret"}
	return &Policy{Namespaces: ns, Verifier: newVerifier(t, Config{HMACSecret: testSecret}), MaxChannelLength: 32}
}

// TestPolicyMatrix checks each action for an anonymous client and two users
// on channels of every kind. A want of 0 means allowed.
func TestPolicyMatrix(t *testing.T) {
	p := testPolicy(t)
	alice := &Credentials{User: "alice", Channels: []string{"private:granted"}}
	bob := &Credentials{User: "bob"}
	subTok := func(user, ch string, exp time.Duration) string {
		return sign(t, jwt.SigningMethodHS256, testSecret, with(claimsFor(user), "channel", ch, "exp", time.Now().Add(exp).Unix()))
	}
	users := map[string]*Credentials{"anon": nil, "alice": alice, "bob": bob}
	for _, tc := range []struct {
		action, who, channel string
		token                string // subscribe: the subscription token
		subscribed           bool   // publish, history, presence
		want                 uint32
	}{
		// The default namespaces: open to everyone.
		{"subscribe", "anon", "chat:general", "", false, 0},
		{"subscribe", "anon", "lobby", "", false, 0},
		{"publish", "anon", "chat:general", "", false, 0},
		{"history", "anon", "chat:general", "", false, 0},
		{"presence", "alice", "chat:general", "", false, 0},
		// Channel names and namespaces.
		{"subscribe", "alice", "", "", false, 105},
		{"subscribe", "alice", "chat:a b", "", false, 105},
		{"subscribe", "alice", "chat:this-name-is-longer-than-32-bytes", "", false, 105},
		{"subscribe", "alice", "unknown:x", "", false, 106},
		{"publish", "alice", "unknown:x", "", true, 106},
		{"history", "anon", "unknown:x", "", false, 106},
		// Authenticated only.
		{"subscribe", "anon", "members:x", "", false, 107},
		{"subscribe", "bob", "members:x", "", false, 0},
		{"publish", "anon", "members:x", "", false, 107},
		{"publish", "bob", "members:x", "", false, 0},
		{"history", "anon", "members:x", "", false, 107},
		{"presence", "anon", "members:x", "", false, 107},
		{"presence", "bob", "members:x", "", false, 0},
		// The zero Namespace: authenticated subscribers, nothing else.
		{"subscribe", "anon", "closed:x", "", false, 107},
		{"subscribe", "bob", "closed:x", "", false, 0},
		{"publish", "bob", "closed:x", "", true, 107},
		{"history", "bob", "closed:x", "", true, 111},
		{"presence", "bob", "closed:x", "", true, 111},
		// Public, anonymous, read-only.
		{"subscribe", "anon", "news:x", "", false, 0},
		{"publish", "anon", "news:x", "", true, 107},
		{"publish", "alice", "news:x", "", true, 107},
		{"history", "anon", "news:x", "", false, 111},
		{"presence", "anon", "news:x", "", false, 111},
		// Private: a subscription token, or the channels claim.
		{"subscribe", "alice", "private:x", "", false, 107},
		{"subscribe", "alice", "private:x", subTok("alice", "private:x", time.Hour), false, 0},
		{"subscribe", "alice", "private:x", subTok("alice", "private:y", time.Hour), false, 107},
		{"subscribe", "alice", "private:x", subTok("bob", "private:x", time.Hour), false, 107},
		{"subscribe", "alice", "private:x", subTok("alice", "private:x", -time.Minute), false, 115},
		{"subscribe", "alice", "private:x", "garbage", false, 107},
		{"subscribe", "anon", "private:x", subTok("alice", "private:x", time.Hour), false, 107},
		{"subscribe", "alice", "private:granted", "", false, 0},
		{"subscribe", "bob", "private:granted", "", false, 107},
		{"publish", "alice", "private:x", "", false, 107}, // subscribers only
		{"publish", "alice", "private:x", "", true, 0},
		{"publish", "alice", "private:granted", "", false, 107}, // still subscribers only
		{"history", "alice", "private:x", "", false, 107},
		{"history", "alice", "private:x", "", true, 0},
		{"history", "alice", "private:granted", "", false, 0},
		{"presence", "bob", "private:x", "", false, 107},
		{"presence", "bob", "private:x", "", true, 0},
		// User-limited channels: only the users named, no token needed.
		{"subscribe", "alice", "dm:#alice,bob", "", false, 0},
		{"subscribe", "bob", "dm:#alice,bob", "", false, 0},
		{"subscribe", "bob", "dm:#alice", "", false, 107},
		{"subscribe", "bob", "dm:#alice", subTok("bob", "dm:#alice", time.Hour), false, 107},
		{"subscribe", "anon", "dm:#alice,bob", "", false, 107},
		{"subscribe", "alice", "dm:#alice#bob", "", false, 107},
		{"subscribe", "alice", "dm:#", "", false, 107},
		{"subscribe", "alice", "chat:room#alice", "", false, 0},
		{"subscribe", "anon", "chat:room#alice", "", false, 107},
		{"subscribe", "bob", "chat:room#alice", "", false, 107},
		{"publish", "bob", "dm:#alice,bob", "", false, 0},
		{"publish", "bob", "dm:#alice", "", true, 107},
		{"history", "bob", "dm:#alice", "", true, 107},
		{"history", "alice", "dm:#alice", "", false, 0},
		{"presence", "bob", "dm:#alice", "", false, 107},
		// An unknown subscribe policy denies.
		{"subscribe", "alice", "odd:x", "", false, 107},
	} {
		creds := users[tc.who]
		var err error
		switch tc.action {
		case "subscribe":
			err = p.CanSubscribe(creds, tc.channel, tc.token)
		case "publish":
			err = p.CanPublish(creds, tc.channel, tc.subscribed)
		case "history":
			err = p.CanHistory(creds, tc.channel, tc.subscribed)
		case "presence":
			err = p.CanPresence(creds, tc.channel, tc.subscribed)
		}
		if got := code(err); got != tc.want || (err != nil) != (tc.want != 0) {
			t.Errorf("%s %s %q (subscribed %v): %v, want code %d", tc.who, tc.action, tc.channel, tc.subscribed, err, tc.want)
		}
	}
}

func TestPolicyZeroValueRefusesEverything(t *testing.T) {
	var p Policy
	if err := p.CanSubscribe(nil, "chat:x", ""); code(err) != 106 {
		t.Errorf("zero Policy: %v, want 106", err)
	}
	// Without a Verifier no subscription token is accepted.
	p = Policy{Namespaces: map[string]Namespace{"private": {Subscribe: SubscribeToken}}}
	tok := sign(t, jwt.SigningMethodHS256, testSecret, with(claimsFor("alice"), "channel", "private:x"))
	if err := p.CanSubscribe(&Credentials{User: "alice"}, "private:x", tok); code(err) != 107 {
		t.Errorf("no verifier: %v, want 107", err)
	}
}

func TestPolicyNamespace(t *testing.T) {
	p := testPolicy(t)
	ns, err := p.Namespace("chat:general")
	if err != nil || ns != DefaultNamespaces()["chat"] {
		t.Errorf("Namespace(chat:general) = %+v, %v", ns, err)
	}
}
