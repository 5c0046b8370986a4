package brokertest

import (
	"testing"
	"time"

	"github.com/redcast/redcast/broker"
)

// RunRevocations runs the RevocationStore checks as subtests of t.
// newStore is called once per subtest and must return a store that shares
// nothing with any other (a key prefix per call for a shared Redis); two
// calls of newStore with the same t must not be made.
func RunRevocations(t *testing.T, newStore func(t *testing.T) broker.RevocationStore) {
	t.Helper()
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s broker.RevocationStore)
	}{
		{"RevokeToken", testRevokeToken},
		{"RevocationExpires", testRevocationExpires},
		{"InvalidateUserTokens", testInvalidateUserTokens},
		{"BlockUser", testBlockUser},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

func status(t *testing.T, s broker.RevocationStore, user, jti string) broker.TokenStatus {
	t.Helper()
	st, err := s.TokenStatus(t.Context(), user, jti)
	if err != nil {
		t.Fatalf("TokenStatus(%q, %q): %v", user, jti, err)
	}
	return st
}

func testRevokeToken(t *testing.T, s broker.RevocationStore) {
	ctx := t.Context()
	if st := status(t, s, "u", "j1"); st != (broker.TokenStatus{}) {
		t.Fatalf("fresh store: %+v, want nothing", st)
	}
	if err := s.RevokeToken(ctx, "j1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "j-forever", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "j-past", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	for jti, want := range map[string]bool{"j1": true, "j-forever": true, "j-past": false, "j2": false} {
		if st := status(t, s, "u", jti); st.Revoked != want || st.Blocked || !st.IssuedBefore.IsZero() {
			t.Fatalf("token %q: %+v, want revoked %v and nothing else", jti, st, want)
		}
	}
	if st := status(t, s, "", "j1"); !st.Revoked {
		t.Fatalf("token j1 without a user: %+v, want revoked", st)
	}
}

func testRevocationExpires(t *testing.T, s broker.RevocationStore) {
	ctx := t.Context()
	soon := time.Now().Add(300 * time.Millisecond)
	if err := s.RevokeToken(ctx, "j", soon); err != nil {
		t.Fatal(err)
	}
	// A shorter until does not shorten a revocation; a longer one
	// lengthens it.
	if err := s.RevokeToken(ctx, "j-long", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "j-long", soon); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "j-grow", soon); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "j-grow", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.InvalidateUserTokens(ctx, "u", time.Now(), soon); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "u", "j"); !st.Revoked || st.IssuedBefore.IsZero() {
		t.Fatalf("before until: %+v, want revoked and invalidated", st)
	}
	WaitFor(t, "the revocations to expire", func() bool {
		st := status(t, s, "u", "j")
		return !st.Revoked && st.IssuedBefore.IsZero()
	})
	if st := status(t, s, "u", "j-long"); !st.Revoked {
		t.Fatalf("j-long, revoked for an hour and then for less: %+v, want still revoked", st)
	}
	if st := status(t, s, "", "j-grow"); !st.Revoked {
		t.Fatalf("j-grow, revoked briefly and then for an hour: %+v, want still revoked", st)
	}
}

func testInvalidateUserTokens(t *testing.T, s broker.RevocationStore) {
	ctx := t.Context()
	base := time.UnixMilli(time.Now().UnixMilli()) // the stores keep milliseconds
	if err := s.InvalidateUserTokens(ctx, "u", base, time.Time{}); err != nil {
		t.Fatal(err)
	}
	st := status(t, s, "u", "")
	if !st.IssuedBefore.Equal(base) || st.Revoked || st.Blocked {
		t.Fatalf("after invalidating: %+v, want IssuedBefore %v only", st, base)
	}
	if !st.Refuses(base.Add(-time.Second)) || st.Refuses(base) || !st.Refuses(time.Time{}) {
		t.Fatalf("%+v refuses a token issued a second before %v: %v, at it: %v, without iat: %v; want true, false, true",
			st, base, st.Refuses(base.Add(-time.Second)), st.Refuses(base), st.Refuses(time.Time{}))
	}
	// An earlier cut does not move it back; a later one moves it on.
	if err := s.InvalidateUserTokens(ctx, "u", base.Add(-time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "u", ""); !st.IssuedBefore.Equal(base) {
		t.Fatalf("after an earlier cut: %v, want %v", st.IssuedBefore, base)
	}
	if err := s.InvalidateUserTokens(ctx, "u", base.Add(time.Minute), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "u", ""); !st.IssuedBefore.Equal(base.Add(time.Minute)) {
		t.Fatalf("after a later cut: %v, want %v", st.IssuedBefore, base.Add(time.Minute))
	}
	if st := status(t, s, "other", ""); st != (broker.TokenStatus{}) {
		t.Fatalf("another user: %+v, want nothing", st)
	}
}

func testBlockUser(t *testing.T, s broker.RevocationStore) {
	ctx := t.Context()
	if err := s.UnblockUser(ctx, "u"); err != nil {
		t.Fatalf("unblocking a user who is not blocked: %v", err)
	}
	if err := s.BlockUser(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "u", "j"); !st.Blocked || st.Revoked || !st.Refuses(time.Now()) {
		t.Fatalf("blocked user: %+v, want blocked only", st)
	}
	if st := status(t, s, "v", ""); st.Blocked {
		t.Fatal("another user is blocked too")
	}
	if err := s.UnblockUser(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "u", "j"); st.Blocked {
		t.Fatalf("unblocked user: %+v", st)
	}
}
