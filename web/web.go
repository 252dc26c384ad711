// Package web serves relay's browser client (relay.js, react.js and their
// TypeScript declarations) and the demo page, embedded in the binary, at
// stable URLs a page can import directly; in dev mode it also mints tokens for
// the demo's users.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed relay.js relay-core.js relay-share.js relay-stores.js react.js relay.d.ts react.d.ts demo
var files embed.FS

// Options configure Register.
type Options struct {
	// MintDemoToken returns a token for the demo user named user (one of
	// DemoUsers). It is set only in dev mode: when nil, POST /api/dev/token
	// answers 404.
	MintDemoToken func(user string) (token string, err error)
	// DemoTokensFromAnywhere lets any client mint demo tokens. By default
	// only a client on this machine may: a loopback peer that came through no
	// proxy (no forwarding header), so a dev relay reachable from elsewhere
	// hands nobody else a token.
	DemoTokensFromAnywhere bool
}

// DemoUser is one of the demo page's users.
type DemoUser struct {
	ID       string
	Name     string
	Projects []string
}

// DemoUsers returns the demo page's users, all members of project 1.
func DemoUsers() []DemoUser {
	return []DemoUser{
		{ID: "1", Name: "alice", Projects: []string{"1"}},
		{ID: "2", Name: "bob", Projects: []string{"1"}},
		{ID: "3", Name: "carol", Projects: []string{"1"}},
	}
}

// LookupDemoUser finds a demo user by name.
func LookupDemoUser(name string) (DemoUser, bool) {
	for _, u := range DemoUsers() {
		if u.Name == name {
			return u, true
		}
	}
	return DemoUser{}, false
}

// Version is relay's version, and the version of the npm package of its
// browser client (web/package.json and the repository's root package.json,
// which lets npm install the client from a git URL). package_test.go keeps
// the three equal: bump them together when tagging a release (vX.Y.Z), so a
// page that pins the client by tag or version gets the client of that relay.
const Version = "0.10.0"

// CacheControl is sent with every file. The URLs are stable (not versioned
// by content), so a browser must revalidate before each use: with the ETag
// that costs a 304 without a body, and a page never runs a client older than
// the relay it talks to after a deploy. (A content-hashed URL could be cached
// for a year; importing pages would then need to know the hash.)
const CacheControl = "no-cache"

// asset is one served file with its precomputed headers.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// routes maps URL paths to embedded files.
var routes = map[string]string{
	"/":                "demo/index.html",
	"/demo/app.js":     "demo/app.js",
	"/demo/style.css":  "demo/style.css",
	"/demo/icon.svg":   "demo/icon.svg",
	"/relay.js":        "relay.js",
	"/relay-core.js":   "relay-core.js",
	"/relay-share.js":  "relay-share.js",
	"/relay-stores.js": "relay-stores.js",
	"/react.js":        "react.js",
	"/relay.d.ts":      "relay.d.ts",
	"/react.d.ts":      "react.d.ts",
}

// assets loads every routed file once.
var assets = sync.OnceValues(func() (map[string]*asset, error) {
	out := make(map[string]*asset, len(routes))
	for url, name := range routes {
		body, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		out[url] = &asset{body: body, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return out, nil
})

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".d.ts"):
		return "application/typescript; charset=utf-8"
	case strings.HasSuffix(name, ".js"):
		return "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		return "text/css; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Register mounts the files and the dev token endpoint on e. It panics if
// the embedded files are missing (a build error, not a runtime condition).
func Register(e *echo.Echo, opt Options) {
	all, err := assets()
	if err != nil {
		panic("web: embedded files: " + err.Error())
	}
	for url, a := range all {
		e.GET(url, a.serve)
		e.HEAD(url, a.serve)
	}
	e.POST("/api/dev/token", devToken(opt.MintDemoToken, opt.DemoTokensFromAnywhere))
}

func (a *asset) serve(c echo.Context) error {
	h := c.Response().Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", CacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers If-None-Match against the ETag set above with a
	// 304 (weak comparison, RFC 9110 §13.1.2), HEAD, and Range requests.
	http.ServeContent(c.Response(), c.Request(), "", time.Time{}, bytes.NewReader(a.body))
	return nil
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// devToken answers POST /api/dev/token {"user":"alice"} with a token for
// that demo user, in dev mode only.
func devToken(mint func(string) (string, error), anywhere bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if mint == nil {
			return c.JSON(http.StatusNotFound, errorBody{"not_found",
				"demo tokens are minted only in dev mode: start relay with RELAY_DEV=true (never where it verifies real tokens)"})
		}
		if !anywhere && !fromThisMachine(c.Request()) {
			return c.JSON(http.StatusForbidden, errorBody{"forbidden",
				"demo tokens are minted for clients on relay's own machine only; for a public demo start relay with RELAY_DEV_REMOTE=true"})
		}
		var req struct {
			User string `json:"user"`
		}
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, 4<<10))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			return c.JSON(http.StatusBadRequest, errorBody{"bad_request", `send {"user":"alice"} (alice, bob or carol)`})
		}
		u, ok := LookupDemoUser(req.User)
		if !ok {
			return c.JSON(http.StatusBadRequest, errorBody{"bad_request", "unknown demo user " + strconv.Quote(clip(req.User)) + ": use alice, bob or carol"})
		}
		tok, err := mint(u.Name)
		if err != nil {
			return c.JSON(http.StatusInternalServerError, errorBody{"internal", "could not mint a demo token; see relay's log"})
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, map[string]any{"token": tok, "user_id": u.ID, "name": u.Name, "projects": u.Projects})
	}
}

// forwardingHeaders are set by proxies: a request carrying one came from
// elsewhere, whatever its peer address.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip", "Fly-Client-Ip", "Cf-Connecting-Ip", "True-Client-Ip"}

// fromThisMachine reports whether r came from a loopback peer through no proxy.
func fromThisMachine(r *http.Request) bool {
	for _, h := range forwardingHeaders {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
