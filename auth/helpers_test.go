package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef")
	// t0 is the test clock's start: tokens expire relative to it.
	t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// testClock is a settable clock for a Verifier under test.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

// newTestVerifier returns a Verifier for testSecret whose clock reads t0
// until the test moves it.
func newTestVerifier(t testing.TB) (*Verifier, *testClock) {
	t.Helper()
	v, err := NewVerifier(testSecret)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	clock := &testClock{t: t0}
	v.now = clock.now
	return v, clock
}

// sign builds a token by hand, as a backend would.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	token, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return token
}

// hs256 signs c with testSecret.
func hs256(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, testSecret, c)
}

// unix returns t0 moved by d, as a JWT NumericDate value.
func unix(d time.Duration) int64 { return t0.Add(d).Unix() }

func checkErr(t *testing.T, token string, err, want error, msg string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error: got %v, want one wrapping %v", err, want)
	}
	other := ErrTokenExpired
	if want == ErrTokenExpired {
		other = ErrUnauthenticated
	}
	if errors.Is(err, other) {
		t.Errorf("error: got %v, which also wraps %v", err, other)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error: got %q, want it to contain %q", err, msg)
	}
	if token != "" && strings.Contains(err.Error(), token[len(token)/2:]) {
		t.Errorf("error: got %q, which quotes the token", err)
	}
}

func checkIdentity(t *testing.T, got, want *Identity) {
	t.Helper()
	if got.UserID != want.UserID || got.Name != want.Name || !got.Expires.Equal(want.Expires) {
		t.Errorf("identity: got %q %q %v, want %q %q %v",
			got.UserID, got.Name, got.Expires, want.UserID, want.Name, want.Expires)
	}
	for _, f := range []struct {
		name      string
		got, want []string
	}{{"Projects", got.Projects, want.Projects}, {"Subscribe", got.Subscribe, want.Subscribe},
		{"Publish", got.Publish, want.Publish}} {
		if !slices.Equal(f.got, f.want) {
			t.Errorf("%s: got %q, want %q", f.name, f.got, f.want)
		}
	}
}
