package auth_test

import (
	"errors"
	"fmt"

	"github.com/redcast/redcast/auth"
)

// The application's backend and redcast share a secret; the backend mints a
// connection token, redcast verifies it.
func ExampleVerifier_VerifyConnect() {
	secret := []byte("an example secret of 32 bytes...")
	token, err := auth.Mint(secret, auth.MintOptions{User: "alice", Info: []byte(`{"name": "Alice"}`)})
	if err != nil {
		panic(err)
	}
	v, err := auth.NewVerifier(auth.Config{HMACSecret: secret})
	if err != nil {
		panic(err)
	}
	creds, err := v.VerifyConnect(token)
	if err != nil {
		panic(err)
	}
	fmt.Println(creds.User, string(creds.Info))

	// A server with another secret refuses the token.
	other, err := auth.NewVerifier(auth.Config{HMACSecret: []byte("another secret, also of 32 bytes")})
	if err != nil {
		panic(err)
	}
	_, err = other.VerifyConnect(token)
	fmt.Println(err, errors.Is(err, auth.ErrUnauthorized))
	// Output:
	// alice {"name":"Alice"}
	// redcast error 114: bad signature true
}

func ExamplePolicy_CanSubscribe() {
	p := &auth.Policy{Namespaces: map[string]auth.Namespace{
		"chat":    {Anonymous: true, Publish: true},
		"private": {Subscribe: auth.SubscribeToken},
	}}
	alice := &auth.Credentials{User: "alice"}
	fmt.Println(p.CanSubscribe(nil, "chat:general", ""))
	fmt.Println(p.CanSubscribe(nil, "private:x", ""))
	fmt.Println(p.CanSubscribe(alice, "private:#alice,bob", ""))
	fmt.Println(p.CanSubscribe(alice, "secret:x", ""))
	// Output:
	// <nil>
	// redcast error 107: channel "private:x" needs a subscription token
	// <nil>
	// redcast error 106: unknown channel namespace "secret"
}
