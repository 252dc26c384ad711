package transport

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
)

// checkOrigin enforces the origin allowlist on every route, and answers CORS
// for allowed foreign origins. Requests without an Origin header (servers,
// CLIs) are not origin-checked; browsers always send one cross-site.
//
// An origin allowed only by "*" may connect with a token it holds (?token=,
// Authorization), never with the browser's cookie: any site could otherwise
// read a signed-in user's streams. Its requests have their cookies removed
// and get no Access-Control-Allow-Credentials, so a browser does not hand
// the page a credentialed answer either.
func (s *Server) checkOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		origin := r.Header.Get("Origin")
		if origin == "" || sameOrigin(origin, r) {
			return next(c)
		}
		named := s.originListed(origin)
		if !named && !s.anyOrigin() {
			return c.JSON(http.StatusForbidden, errorBody{Error: "origin_not_allowed",
				Message: "origin " + origin + " may not use this relay; add it to RELAY_ALLOWED_ORIGINS"})
		}
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", origin)
		if named {
			h.Set("Access-Control-Allow-Credentials", "true")
		} else if _, err := r.Cookie(auth.CookieName); err == nil {
			r.Header.Del("Cookie")
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), cookieDroppedKey{}, origin)))
		}
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "Idempotent-Replayed, Retry-After")
		if r.Method == http.MethodOptions { // preflight
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Idempotency-Key")
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
		return next(c)
	}
}

// cookieDroppedKey marks a request whose relay_token cookie was not honoured
// (a foreign origin allowed only by "*"); its value is the origin.
type cookieDroppedKey struct{}

// originAllowed reports whether a browser page at origin may connect: the
// same origin, or one listed in AllowedOrigins ("*" allows every origin).
func (s *Server) originAllowed(origin string, r *http.Request) bool {
	if origin == "" || sameOrigin(origin, r) {
		return true
	}
	return s.anyOrigin() || s.originListed(origin)
}

// originListed reports whether AllowedOrigins names origin itself.
func (s *Server) originListed(origin string) bool {
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool {
		return o != "*" && strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// anyOrigin reports whether AllowedOrigins holds "*".
func (s *Server) anyOrigin() bool { return slices.Contains(s.cfg.AllowedOrigins, "*") }
