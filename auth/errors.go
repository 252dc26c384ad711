package auth

import (
	"errors"
	"fmt"
	"time"
)

// The sentinel errors of package auth. Errors returned by this package wrap
// exactly one of them after a message that says what went wrong and what to
// do next; the transports map each to one HTTP status and one WebSocket close
// code. No message ever contains the token.
var (
	// ErrUnauthenticated: there is no token, or it is malformed, signed with
	// another algorithm or key, a refresh token, or names no user. Getting a
	// token from the backend again (and checking relay's configuration) is the
	// way out.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTokenExpired: the token was valid but its exp has passed. It is kept
	// distinct from ErrUnauthenticated so that clients can silently fetch a
	// fresh token and reconnect instead of showing a login page.
	ErrTokenExpired = errors.New("token expired")
	// ErrForbidden: the identity is valid but may not subscribe or publish to
	// the channel asked for.
	ErrForbidden = errors.New("forbidden")
)

// unauthenticated returns "verify token: <problem>: unauthenticated". The
// problem must not contain the token.
func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("verify token: "+format+": %w", append(args, ErrUnauthenticated)...)
}

// expired returns the error for a token whose exp is at or before now.
func expired(exp time.Time) error {
	return fmt.Errorf("verify token: token expired at %s: fetch a fresh token from your backend and reconnect: %w",
		exp.UTC().Format(time.RFC3339), ErrTokenExpired)
}

// claimError reports a claim whose value relay cannot use. It is returned
// only after the token's signature has been checked.
type claimError struct {
	claim   string // the JSON name, e.g. "projects"
	problem string // what is wrong, e.g. `element 1 is 1.5, want an integer`
}

func (e *claimError) Error() string {
	return fmt.Sprintf("claim %q %s", e.claim, e.problem)
}
