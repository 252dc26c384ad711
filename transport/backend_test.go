package transport_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaydev/relay/app/bootstrap"
	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/transport"
)

// post sends body to path with a bearer token.
func (r *relay) post(t *testing.T, tok, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON", req.Method, req.URL.Path, raw)
	}
	return resp.StatusCode, out
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// stockToken is a token as simplejwt mints it: user_id only, no claims.
func stockToken(t *testing.T, user string) string {
	return rawToken(t, secret, map[string]any{"user_id": user, "token_type": "access", "exp": time.Now().Add(time.Hour).Unix()})
}

// authzBackend is a stub of the app's authorization view: user 7 may read
// project 1's channels.
type authzBackend struct {
	*httptest.Server
	calls atomic.Int32
}

func newAuthzBackend(t *testing.T, tok string) *authzBackend {
	b := &authzBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		var req struct {
			UserID   string   `json:"user_id"`
			Channels []string `json:"channels"`
		}
		if r.Header.Get("Authorization") != "Bearer "+tok || json.NewDecoder(r.Body).Decode(&req) != nil || req.UserID != "7" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		allow := []string{}
		for _, ch := range req.Channels {
			if strings.HasPrefix(ch, "project_1_") {
				allow = append(allow, ch)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"allow": allow, "ttl": 60, "name": "grace"})
	}))
	t.Cleanup(b.Close)
	return b
}

func TestAuthorizeHook(t *testing.T) {
	tok := stockToken(t, "7")
	b := newAuthzBackend(t, tok)
	r := startRelay(t, withConfig(func(c *transport.Config) { c.Authorize = transport.Authorize{URL: b.URL} }))

	for _, kind := range kinds {
		c := mustConnect(t, kind, r.url+"/events?channel=project_1_tickets&channel=user_7_notifications", bearer(tok))
		id := r.mustPublish(t, "project_1_tickets", "ticket_updated", map[string]any{"n": 1})
		if got := c.event(t).envID(); got != id {
			t.Fatalf("%s: got event %s, want %s", kind, got, id)
		}
		c.close()
	}
	if got := b.calls.Load(); got != 1 {
		t.Errorf("backend called %d times for two connects to one channel, want 1 (the answer is cached)", got)
	}
	_, resp, err := connect(t, sseKind, r.url+"/events?channel=project_2_tickets", bearer(tok))
	if err != nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("project 2: got %v %v, want 403", resp, err)
	}
	if msg := refusal(t, resp); !strings.Contains(msg, "does not allow") {
		t.Errorf("refusal says %q, want that the backend does not allow it", msg)
	}

	b.Close() // the app goes away: uncached channels are refused, saying why
	_, resp, err = connect(t, sseKind, r.url+"/events?channel=project_1_presence", bearer(tok))
	if err != nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("backend down: got %v %v, want 403", resp, err)
	}
	if msg := refusal(t, resp); !strings.Contains(msg, "could not be reached") {
		t.Errorf("refusal says %q, want that the backend could not be reached", msg)
	}
}

// refusal is a refused request's message.
func refusal(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal([]byte(readAll(t, resp.Body)), &body); err != nil {
		t.Fatal(err)
	}
	msg, _ := body["message"].(string)
	return msg
}

func TestAuthorizeHookOff(t *testing.T) {
	r := startRelay(t)
	_, resp, err := connect(t, sseKind, r.url+"/events?channel=project_1_tickets", bearer(stockToken(t, "7")))
	if err != nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got %v %v, want 403 without RELAY_AUTHORIZE_URL", resp, err)
	}
}

func TestAuthorizeHookTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Authorize = transport.Authorize{URL: slow.URL, Timeout: 200 * time.Millisecond}
	}))
	start := time.Now()
	_, resp, err := connect(t, sseKind, r.url+"/events?channel=project_1_tickets", bearer(stockToken(t, "7")))
	if err != nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got %v %v, want 403", resp, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusal took %v, want about the 200 ms timeout", took)
	}
}

func TestTokenExpirySetting(t *testing.T) {
	for _, keep := range []bool{false, true} {
		for _, kind := range kinds {
			t.Run(map[bool]string{false: "close", true: "keep"}[keep]+"/"+kind, func(t *testing.T) {
				t.Parallel()
				r := startRelay(t, withConfig(func(c *transport.Config) { c.KeepPastExpiry = keep }))
				// A token's exp is whole seconds (jwt.NewNumericDate truncates):
				// one of 1 s expired anywhere within that second, at times
				// before a loaded machine had connected with it.
				const ttl = 3 * time.Second
				expires := time.Now().Add(ttl).Truncate(time.Second)
				tok := token(t, auth.Identity{UserID: "1", Projects: []string{"1"}}, ttl)
				c := mustConnect(t, kind, r.url+"/events?channel=project_1_tickets", bearer(tok))
				if !keep {
					rest := c.ended(t)
					if kind == sseKind && (len(rest) == 0 || rest[len(rest)-1].Kind != "token_expired") {
						t.Fatalf("got %v, want a token_expired ending", rest)
					}
					if kind == wsKind && c.code != transport.CloseTokenExpired {
						t.Fatalf("close code %d, want %d", c.code, transport.CloseTokenExpired)
					}
					return
				}
				exp := time.NewTimer(time.Until(expires.Add(500 * time.Millisecond))) // past the token's exp
				<-exp.C
				id := r.mustPublish(t, "project_1_tickets", "after_exp", nil)
				if got := c.event(t).envID(); got != id {
					t.Fatalf("got %s, want %s after exp", got, id)
				}
			})
		}
	}
}

func TestCursorEndpoint(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		get := func(tok, ch string) (int, map[string]any) {
			req, _ := http.NewRequest(http.MethodGet, r.url+"/api/channels/"+ch+"/cursor", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			return doJSON(t, req)
		}
		status, out := get(publisher(t), "project_1_tickets")
		cur, _ := out["cursor"].(string)
		if status != http.StatusOK || out["channel"] != "project_1_tickets" {
			t.Fatalf("empty channel: %d %v", status, out)
		}
		if _, err := events.ParsePosition(cur); err != nil || cur == "0" {
			t.Fatalf("empty channel's cursor %q: %v, want an empty position", cur, err)
		}
		// Following from the cursor of an empty channel gets its first event.
		c := mustConnect(t, sseKind, r.url+"/events?channel=project_1_tickets&last_event_id="+cur, bearer(alice(t)))
		id := r.mustPublish(t, "project_1_tickets", "x", nil)
		if got := c.event(t).envID(); got != id {
			t.Fatalf("got %s, want %s", got, id)
		}
		if status, out = get(publisher(t), "project_1_tickets"); status != http.StatusOK || out["cursor"] != id {
			t.Fatalf("after a publish: %d %v, want cursor %s", status, out, id)
		}
		if status, _ = get(alice(t), "project_1_tickets"); status != http.StatusForbidden {
			t.Errorf("a reader's token: %d, want 403 (authorized like publishing)", status)
		}
		if status, _ = get(publisher(t), "bad%20name"); status != http.StatusBadRequest {
			t.Errorf("bad channel: %d, want 400", status)
		}
	})
}

func TestDisconnect(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		tok := alice(t)
		tickets := mustConnect(t, wsKind, r.url+"/events?channel=project_1_tickets", bearer(tok))
		sse := mustConnect(t, sseKind, r.url+"/events?channel=project_1_tickets&channel=user_1_notifications", bearer(tok))
		other := mustConnect(t, sseKind, r.url+"/events?channel=project_2_tickets", bearer(tok))
		notes := mustConnect(t, wsKind, r.url+"/ws/notifications/", bearer(tok))

		status, out := r.post(t, publisher(t), "/api/disconnect", `{"user_id":"1","channels":["project_1_tickets"]}`)
		if status != http.StatusOK || out["disconnected"] != 2.0 {
			t.Fatalf("channel disconnect: %d %v, want 200 {disconnected: 2}", status, out)
		}
		tickets.ended(t)
		if tickets.code != transport.CloseForbidden {
			t.Errorf("ws close %d, want %d", tickets.code, transport.CloseForbidden)
		}
		if rest := sse.ended(t); len(rest) == 0 || rest[len(rest)-1].Kind != "forbidden" {
			t.Errorf("sse ending %v, want forbidden", rest)
		}
		id := r.mustPublish(t, "project_2_tickets", "still", nil)
		if got := other.event(t).envID(); got != id {
			t.Fatalf("another channel's stream: got %s, want %s", got, id)
		}

		if status, _ := r.post(t, alice(t), "/api/disconnect", `{"user_id":"1"}`); status != http.StatusForbidden {
			t.Errorf("a reader's token: %d, want 403", status)
		}
		if status, _ := r.post(t, publisher(t), "/api/disconnect", `{"user_id":"a b"}`); status != http.StatusBadRequest {
			t.Errorf("bad user id: %d, want 400", status)
		}
		status, out = r.post(t, publisher(t), "/api/disconnect", `{"user_id":"1"}`)
		if status != http.StatusOK || out["disconnected"] != 2.0 {
			t.Fatalf("user disconnect: %d %v, want {disconnected: 2}", status, out)
		}
		other.ended(t)
		notes.ended(t)
		if notes.code != transport.CloseForbidden {
			t.Errorf("ws close %d, want %d", notes.code, transport.CloseForbidden)
		}
	})
}

// TestDisconnectAcrossProcesses: two relays over one Redis; a disconnect
// sent to one ends the user's stream on the other.
func TestDisconnectAcrossProcesses(t *testing.T) {
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	start := func() *relay {
		v, _ := auth.NewVerifier(secret)
		proc, err := bootstrap.Build(context.Background(), bootstrap.Config{RedisURL: url, RedisPrefix: prefix, Auth: v})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(proc.Server)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = proc.Server.Shutdown(ctx)
			ts.CloseClientConnections()
			ts.Close()
			_ = proc.Close()
		})
		return &relay{url: ts.URL, srv: proc.Server, hub: proc.Hub}
	}
	a, b := start(), start()
	c := mustConnect(t, wsKind, b.url+"/ws/notifications/", bearer(alice(t)))
	status, out := a.post(t, publisher(t), "/api/disconnect", `{"user_id":"1"}`)
	if status != http.StatusOK || out["disconnected"] != 0.0 {
		t.Fatalf("%d %v, want 200 {disconnected: 0} (none on this process)", status, out)
	}
	c.ended(t)
	if c.code != transport.CloseForbidden {
		t.Errorf("close %d on the other process, want %d", c.code, transport.CloseForbidden)
	}
}

// TestDisconnectDropsCachedAuthorization: after a channel disconnect, the
// next connect asks the app again instead of trusting the cached allow.
func TestDisconnectDropsCachedAuthorization(t *testing.T) {
	tok := stockToken(t, "7")
	b := newAuthzBackend(t, tok)
	r := startRelay(t, withConfig(func(c *transport.Config) { c.Authorize = transport.Authorize{URL: b.URL} }))
	c := mustConnect(t, sseKind, r.url+"/events?channel=project_1_tickets", bearer(tok))
	if status, out := r.post(t, publisher(t), "/api/disconnect", `{"user_id":"7","channels":["project_1_tickets"]}`); status != http.StatusOK || out["disconnected"] != 1.0 {
		t.Fatalf("disconnect: %d %v", status, out)
	}
	c.ended(t)
	mustConnect(t, sseKind, r.url+"/events?channel=project_1_tickets", bearer(tok))
	if got := b.calls.Load(); got != 2 {
		t.Errorf("backend asked %d times, want 2: the disconnect drops the cached answer", got)
	}
}

func TestDisconnectBadInput(t *testing.T) {
	r := startRelay(t)
	for _, body := range []string{``, `[]`, `{"user_id":""}`, `{"user_id":"1","channels":["bad name"]}`, `{"user_id":1}`} {
		if status, out := r.post(t, publisher(t), "/api/disconnect", body); status != http.StatusBadRequest {
			t.Errorf("body %q: %d %v, want 400", body, status, out)
		}
	}
	if status, _ := r.post(t, "", "/api/disconnect", `{"user_id":"1"}`); status != http.StatusUnauthorized {
		t.Errorf("no credential: %d, want 401", status)
	}
}

// TestDisconnectDuringOpen: a disconnect that arrives while a stream is
// still opening (here: waiting on the authorization hook) ends that stream
// too; one it does not cover opens.
func TestDisconnectDuringOpen(t *testing.T) {
	tok := stockToken(t, "7")
	inner := newAuthzBackend(t, tok)
	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		<-release
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(hook.Close)
	r := startRelay(t, withConfig(func(c *transport.Config) { c.Authorize = transport.Authorize{URL: hook.URL} }))
	for _, tc := range []struct {
		name, kind, body, channel string
		refused                   bool
	}{
		{"sse, user", sseKind, `{"user_id":"7"}`, "project_1_tickets", true},
		{"ws, user", wsKind, `{"user_id":"7"}`, "project_1_tickets", true},
		{"sse, its channel", sseKind, `{"user_id":"7","channels":["project_1_tickets"]}`, "project_1_tickets", true},
		{"ws, another channel", wsKind, `{"user_id":"7","channels":["project_1_presence"]}`, "project_1_tickets", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				c    *client
				resp *http.Response
				err  error
			}
			got := make(chan result, 1)
			go func() {
				c, resp, err := connect(t, tc.kind, r.url+"/events?channel="+tc.channel, bearer(tok))
				got <- result{c, resp, err}
			}()
			select { // the stream is being authorized, not yet registered
			case <-asked:
			case <-time.After(10 * time.Second):
				t.Fatal("the hook was not asked: an answer from before the last disconnect was cached")
			}
			if status, out := r.post(t, publisher(t), "/api/disconnect", tc.body); status != http.StatusOK || out["disconnected"] != 0.0 {
				t.Fatalf("disconnect: %d %v, want 200 {disconnected: 0}", status, out)
			}
			release <- struct{}{}
			res := <-got
			if res.err != nil {
				t.Fatal(res.err)
			}
			switch {
			case !tc.refused:
				if res.c == nil {
					t.Fatalf("got status %d, want a stream: the disconnect was for another channel", res.resp.StatusCode)
				}
				id := r.mustPublish(t, tc.channel, "ticket_updated", nil)
				if ev := res.c.event(t).envID(); ev != id {
					t.Fatalf("got %s, want %s", ev, id)
				}
				res.c.close()
			case tc.kind == sseKind:
				if res.c != nil || res.resp.StatusCode != http.StatusForbidden {
					t.Fatalf("got a stream or status %v, want 403: the disconnect covers it", res.resp)
				}
			default:
				if res.c == nil {
					t.Fatalf("got status %d, want an upgrade closed with %d", res.resp.StatusCode, transport.CloseForbidden)
				}
				res.c.ended(t)
				if res.c.code != transport.CloseForbidden {
					t.Errorf("close %d, want %d", res.c.code, transport.CloseForbidden)
				}
			}
		})
	}
}
