package transport

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// checkOrigin enforces the origin allowlist on every route, and answers CORS
// for allowed foreign origins. Requests without an Origin header (servers,
// CLIs) are not origin-checked; browsers always send one cross-site.
func (s *Server) checkOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		origin := r.Header.Get("Origin")
		if origin == "" || sameOrigin(origin, r) {
			return next(c)
		}
		if !s.originAllowed(origin, r) {
			return c.JSON(http.StatusForbidden, errorBody{Error: "origin_not_allowed",
				Message: "origin " + origin + " may not use this relay; add it to RELAY_ALLOWED_ORIGINS"})
		}
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
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

// originAllowed reports whether a browser page at origin may connect: the
// same origin, or one listed in AllowedOrigins ("*" allows every origin).
func (s *Server) originAllowed(origin string, r *http.Request) bool {
	if origin == "" || sameOrigin(origin, r) {
		return true
	}
	return slices.ContainsFunc(s.cfg.AllowedOrigins, func(o string) bool {
		return o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}
