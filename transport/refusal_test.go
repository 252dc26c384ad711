package transport_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/transport"
)

// TestRefusals checks every refusal over both transports: SSE answers the
// status with a JSON {"error","message"} before any stream starts; WebSocket
// upgrades first, then closes with the matching 4xxx code and a reason.
func TestRefusals(t *testing.T) {
	r := startRelay(t)
	now := time.Now()
	tok := alice(t)
	everything := token(t, auth.Identity{UserID: "1", Subscribe: []string{"*"}}, time.Hour)
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "1", "projects": []int{1, 2}, "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		path   string // with its query, without the token
		token  string // "" for none
		header http.Header
		status int
		code   string // the JSON error code
		close  int
	}{
		{"no token", "/events/notifications", "", nil, 401, "unauthorized", transport.CloseUnauthorized},
		{"garbage token", "/events/notifications", "not-a-jwt", nil, 401, "unauthorized", transport.CloseUnauthorized},
		{"bad signature", "/events/notifications",
			rawToken(t, []byte("another-secret-0123456789abcdef"), claims(nil)), nil, 401, "unauthorized", transport.CloseUnauthorized},
		{"expired", "/events/notifications",
			rawToken(t, secret, claims(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), nil, 401, "token_expired", transport.CloseUnauthorized},
		{"no exp", "/events/notifications",
			rawToken(t, secret, jwt.MapClaims{"sub": "1"}), nil, 401, "unauthorized", transport.CloseUnauthorized},
		{"refresh token", "/events/notifications",
			rawToken(t, secret, jwt.MapClaims{"user_id": 1, "token_type": "refresh", "exp": now.Add(time.Hour).Unix(), "jti": "x"}),
			nil, 401, "unauthorized", transport.CloseUnauthorized},
		{"other project", "/events/projects/3/tickets", tok, nil, 403, "forbidden", transport.CloseForbidden},
		{"other project's presence", "/events/projects/3/presence", tok, nil, 403, "forbidden", transport.CloseForbidden},
		{"other user's notifications", "/events?channel=user_2_notifications", tok, nil, 403, "forbidden", transport.CloseForbidden},
		{"one channel outside the claims", "/events?channel=project_1_tickets&channel=project_3_tickets", tok, nil, 403, "forbidden", transport.CloseForbidden},
		{"old path, other project", "/ws/projects/3/tickets/", tok, nil, 403, "forbidden", transport.CloseForbidden},
		{"bad cursor", "/events/notifications?last_event_id=garbage", tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"bad cursor header", "/events/notifications", tok, http.Header{"Last-Event-Id": {"x=y=z"}}, 400, "bad_request", transport.CloseBadRequest},
		{"bare id on a multiplexed connection", "/events?channel=project_1_tickets&channel=project_2_tickets&last_event_id=abc-1",
			tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"project id with _", "/events/projects/abc_x/tickets", tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"project id too long", "/events/projects/" + strings.Repeat("1", 65) + "/tickets", tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"old path, bad project id", "/ws/projects/a.b/presence/", tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"bad channel name", "/events?channel=bad%20name", tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"channel name too long", "/events?channel=" + strings.Repeat("c", 201), tok, nil, 400, "bad_request", transport.CloseBadRequest},
		{"no channel", "/events", tok, nil, 400, "bad_request", transport.CloseBadRequest},
		// relay's own channel carries other users' disconnects: no pattern reaches it.
		{"relay's own channel, subscribe *", "/events?channel=relay.control", everything, nil, 400, "bad_request", transport.CloseBadRequest},
		{"too many channels", "/events?" + strings.Repeat("channel=project_1_tickets&", transport.MaxChannels+1), tok, nil,
			400, "bad_request", transport.CloseBadRequest},
	} {
		url := r.url + tc.path
		if tc.token != "" {
			url = q(url, "token", tc.token)
		}
		t.Run("sse/"+tc.name, func(t *testing.T) {
			c, resp, err := connect(t, sseKind, url, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			if c != nil {
				t.Fatalf("got a stream, want status %d", tc.status)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.status)
			}
			if code := errorJSON(t, resp); code != tc.code {
				t.Errorf("error: got %q, want %q", code, tc.code)
			}
		})
		t.Run("ws/"+tc.name, func(t *testing.T) {
			conn, resp, err := wsDial(t, url, tc.header)
			if err != nil {
				t.Fatalf("handshake: got %v (status %d), want an upgrade then a close", err, statusOf(resp))
			}
			code, reason := wsCloseCode(t, conn)
			if code != tc.close {
				t.Errorf("close code: got %d, want %d", code, tc.close)
			}
			if reason == "" || len(reason) > 123 {
				t.Errorf("close reason: got %q, want a reason of at most 123 bytes", reason)
			}
		})
	}
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// TestSubscribeClaim checks that a subscribe pattern grants channels beyond
// the user's own and its projects'.
func TestSubscribeClaim(t *testing.T) {
	r := startRelay(t)
	tok := token(t, auth.Identity{UserID: "5", Subscribe: []string{"project_9_*", "public"}}, time.Hour)
	for _, kind := range kinds {
		for _, ch := range []string{"project_9_tickets", "public", "user_5_notifications"} {
			t.Run(kind+"/"+ch, func(t *testing.T) {
				c := mustConnect(t, kind, q(r.url+"/events", "channel", ch, "token", tok), nil)
				c.live(t)
				c.close()
			})
		}
		t.Run(kind+"/project_90_tickets", func(t *testing.T) {
			c, resp, err := connect(t, kind, q(r.url+"/events", "channel", "project_90_tickets", "token", tok), nil)
			switch {
			case err != nil:
				t.Fatal(err)
			case kind == sseKind && (c != nil || resp.StatusCode != http.StatusForbidden):
				t.Errorf("got a stream or status %d, want 403", statusOf(resp))
			case kind == wsKind:
				c.ended(t)
				if c.code != transport.CloseForbidden {
					t.Errorf("close code: got %d, want %d", c.code, transport.CloseForbidden)
				}
			}
		})
	}
}
