package web_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/web"
)

func server(t *testing.T, opt web.Options) *httptest.Server {
	t.Helper()
	e := echo.New()
	web.Register(e, opt)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestFilesContentTypes(t *testing.T) {
	srv := server(t, web.Options{})
	cases := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>relay"},
		{"/relay.js", "text/javascript; charset=utf-8", "export class Relay"},
		{"/relay-core.js", "text/javascript; charset=utf-8", "export function backoffDelay"},
		{"/relay-share.js", "text/javascript; charset=utf-8", "BroadcastChannel"},
		{"/relay-stores.js", "text/javascript; charset=utf-8", "export class NotificationsStore"},
		{"/react.js", "text/javascript; charset=utf-8", "export function createRelayHooks"},
		{"/relay.d.ts", "application/typescript; charset=utf-8", "export class Relay"},
		{"/react.d.ts", "application/typescript; charset=utf-8", "createRelayHooks"},
		{"/demo/app.js", "text/javascript; charset=utf-8", `from "/relay.js"`},
		{"/demo/style.css", "text/css; charset=utf-8", ":root"},
		{"/demo/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			resp, body := get(t, srv.URL+c.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != c.contentType {
				t.Errorf("got Content-Type %q, want %q", got, c.contentType)
			}
			if got := resp.Header.Get("Cache-Control"); got != web.CacheControl {
				t.Errorf("got Cache-Control %q, want %q", got, web.CacheControl)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("got X-Content-Type-Options %q, want nosniff", got)
			}
			if etag := resp.Header.Get("ETag"); len(etag) < 10 || etag[0] != '"' {
				t.Errorf("got ETag %q, want a strong quoted tag", etag)
			}
			if !strings.Contains(body, c.contains) {
				t.Errorf("body does not contain %q", c.contains)
			}
		})
	}
}

func TestETagRevalidation(t *testing.T) {
	srv := server(t, web.Options{})
	first, body := get(t, srv.URL+"/relay.js", nil)
	etag := first.Header.Get("ETag")
	_, other := get(t, srv.URL+"/react.js", nil)
	if body == other {
		t.Fatal("relay.js and react.js served the same body")
	}
	cases := []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"same tag", etag, http.StatusNotModified},
		{"weak form of it", "W/" + etag, http.StatusNotModified},
		{"in a list", `"nope", ` + etag, http.StatusNotModified},
		{"any", "*", http.StatusNotModified},
		{"another tag", `"0123456789abcdef"`, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+"/relay.js", map[string]string{"If-None-Match": c.ifNoneMatch})
			if resp.StatusCode != c.want {
				t.Fatalf("got status %d, want %d", resp.StatusCode, c.want)
			}
			if c.want == http.StatusNotModified {
				if body != "" {
					t.Errorf("got a %d-byte body with 304, want none", len(body))
				}
				if got := resp.Header.Get("ETag"); got != etag {
					t.Errorf("got ETag %q with 304, want %q", got, etag)
				}
			}
		})
	}
	// Another file has another tag.
	r2, _ := get(t, srv.URL+"/react.js", nil)
	if r2.Header.Get("ETag") == etag {
		t.Error("relay.js and react.js share an ETag")
	}
}

func TestHead(t *testing.T) {
	srv := server(t, web.Options{})
	resp, err := http.Head(srv.URL + "/relay.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 || resp.Header.Get("ETag") == "" {
		t.Fatalf("got %d, length %d, ETag %q; want 200 with a length and an ETag", resp.StatusCode, resp.ContentLength, resp.Header.Get("ETag"))
	}
}

func postToken(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url+"/api/dev/token", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("status %d: body is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func TestDevTokenOff(t *testing.T) {
	srv := server(t, web.Options{})
	status, body := postToken(t, srv.URL, `{"user":"alice"}`)
	if status != http.StatusNotFound || body["error"] != "not_found" || body["message"] == "" {
		t.Fatalf("got %d %v, want 404 not_found with a message", status, body)
	}
}

func TestDevTokenOn(t *testing.T) {
	var minted []string
	srv := server(t, web.Options{MintDemoToken: func(user string) (string, error) {
		if user == "carol" {
			return "", errors.New("boom")
		}
		minted = append(minted, user)
		return "tok-" + user, nil
	}})
	cases := []struct {
		name, body string
		status     int
		want       map[string]any
	}{
		{"alice", `{"user":"alice"}`, 200, map[string]any{"token": "tok-alice", "user_id": "1", "name": "alice"}},
		{"bob", `{"user":"bob"}`, 200, map[string]any{"token": "tok-bob", "user_id": "2", "name": "bob"}},
		{"unknown user", `{"user":"mallory"}`, 400, map[string]any{"error": "bad_request"}},
		{"not JSON", `alice`, 400, map[string]any{"error": "bad_request"}},
		{"mint fails", `{"user":"carol"}`, 500, map[string]any{"error": "internal"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := postToken(t, srv.URL, c.body)
			if status != c.status {
				t.Fatalf("got status %d (%v), want %d", status, body, c.status)
			}
			for k, v := range c.want {
				if body[k] != v {
					t.Errorf("got %s = %v, want %v", k, body[k], v)
				}
			}
			if status != 200 && body["message"] == "" {
				t.Error("error without a message")
			}
		})
	}
	if strings.Join(minted, ",") != "alice,bob" {
		t.Errorf("minted for %v, want alice and bob", minted)
	}
}

func TestDemoUsers(t *testing.T) {
	users := web.DemoUsers()
	users[0].Name = "changed"
	if u, ok := web.LookupDemoUser("alice"); !ok || u.ID != "1" || u.Projects[0] != "1" {
		t.Fatalf("got %+v, %v; want alice, user 1 of project 1 (DemoUsers must return a copy)", u, ok)
	}
}

// TestDevTokenThisMachineOnly: in dev mode a demo token goes only to a client
// on relay's own machine, unless DemoTokensFromAnywhere is set.
func TestDevTokenThisMachineOnly(t *testing.T) {
	mint := func(user string) (string, error) { return "tok-" + user, nil }
	local := server(t, web.Options{MintDemoToken: mint})
	anywhere := server(t, web.Options{MintDemoToken: mint, DemoTokensFromAnywhere: true})
	for _, c := range []struct {
		name   string
		url    string
		header string
		status int
	}{
		{"loopback", local.URL, "", 200},
		{"through a proxy", local.URL, "X-Forwarded-For", 403},
		{"through Fly's proxy", local.URL, "Fly-Client-IP", 403},
		{"Forwarded", local.URL, "Forwarded", 403},
		{"anywhere allowed, through a proxy", anywhere.URL, "X-Forwarded-For", 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, c.url+"/api/dev/token", strings.NewReader(`{"user":"alice"}`))
			if c.header != "" {
				req.Header.Set(c.header, "203.0.113.7")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != c.status {
				t.Fatalf("got %d %v, want %d", resp.StatusCode, body, c.status)
			}
			if c.status == 403 && (body["error"] != "forbidden" || !strings.Contains(body["message"].(string), "RELAY_DEV_REMOTE")) {
				t.Errorf("got %v, want forbidden saying RELAY_DEV_REMOTE", body)
			}
		})
	}
	t.Run("from another address", func(t *testing.T) {
		ip := nonLoopbackIP(t)
		if ip == nil {
			t.Log("this machine has no non-loopback address: only the proxy cases above ran")
			return
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		e := echo.New()
		web.Register(e, web.Options{MintDemoToken: mint})
		srv := httptest.NewUnstartedServer(e)
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		defer srv.Close()
		status, body := postToken(t, srv.URL, `{"user":"alice"}`)
		if status != http.StatusForbidden {
			t.Fatalf("a client at %s: got %d %v, want 403", ip, status, body)
		}
	})
}

func nonLoopbackIP(t *testing.T) net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	return nil
}
