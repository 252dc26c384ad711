package auth

// This is the only file of package auth that imports net/http; the rest of
// the package knows nothing of transports.

import (
	"net/http"
	"strings"
)

// CookieName is the cookie TokenFromRequest reads a token from.
const CookieName = "relay_token"

// TokenFromRequest returns the token r carries, looking in this order at an
// "Authorization: Bearer <token>" header (scheme case-insensitive), the token
// query parameter (EventSource and WebSocket cannot set headers) and the
// relay_token cookie. It returns "" when there is none. The token is not
// verified; pass it to Verifier.Verify. Never log it: query strings land in
// access logs.
func TokenFromRequest(r *http.Request) string {
	if t := bearer(r.Header.Get("Authorization")); t != "" {
		return t
	}
	if r.URL != nil {
		if t := r.URL.Query().Get("token"); t != "" {
			return t
		}
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// bearer returns the token of an Authorization header value using the
// Bearer scheme, or "".
func bearer(header string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
