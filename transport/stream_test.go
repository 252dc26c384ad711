package transport_test

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestEnvelope checks that both transports deliver the same envelope: what
// was published, plus id, channel and an RFC 3339 ts; on SSE as a plain
// message whose id line is the envelope id. Over both stores.
func TestEnvelope(t *testing.T) {
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		c := mustConnect(t, kind, r.url+"/events/projects/1/tickets?token="+alice(t), nil)
		if h := c.live(t); len(h) != 0 {
			t.Fatalf("history without a cursor: got %v, want none", h)
		}
		before := time.Now().Add(-time.Second)
		body := `{"channel":"project_1_tickets","type":"ticket_update","data":{"ticket":7,"title":"Ünïcode \"q\""},"extra":[1,2],"id":"mine","ts":"no"}`
		status, out := r.publish(t, publisher(t), body)
		if status != http.StatusOK {
			t.Fatalf("publish: got %d %v, want 200", status, out)
		}
		id := out["id"].(string)

		m := c.event(t)
		if kind == sseKind && m.ID != id {
			t.Errorf("id line: got %q, want %q", m.ID, id)
		}
		env := m.Env
		if got := env["id"]; got != id {
			t.Errorf("id: got %v, want %q (the publish answer)", got, id)
		}
		if got := env["channel"]; got != "project_1_tickets" {
			t.Errorf("channel: got %v, want project_1_tickets", got)
		}
		if got := env["type"]; got != "ticket_update" {
			t.Errorf("type: got %v, want ticket_update", got)
		}
		data, _ := env["data"].(map[string]any)
		if data["ticket"] != 7.0 || data["title"] != `Ünïcode "q"` {
			t.Errorf("data: got %v, want what was published", env["data"])
		}
		if extra, _ := env["extra"].([]any); !slices.Equal(extra, []any{1.0, 2.0}) {
			t.Errorf("extra: got %v, want [1 2]", env["extra"])
		}
		ts, err := time.Parse(time.RFC3339, env["ts"].(string))
		if err != nil {
			t.Errorf("ts %q: %v, want RFC 3339", env["ts"], err)
		} else if ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
			t.Errorf("ts: got %v, want about now", ts)
		}
		if len(env) != 6 {
			t.Errorf("envelope: got %d members %v, want id, channel, ts, type, data, extra", len(env), env)
		}
	})
}

// TestChannelURLs checks every URL of a channel group over both transports,
// with the old Django Channels paths with and without their trailing slash.
func TestChannelURLs(t *testing.T) {
	r := startRelay(t)
	for _, tc := range []struct {
		path    string
		channel string
	}{
		{"/events/notifications", "user_1_notifications"},
		{"/events/projects/1/tickets", "project_1_tickets"},
		{"/events/projects/2/presence", "project_2_presence"},
		{"/events?channel=project_2_tickets", "project_2_tickets"},
		{"/ws/notifications/", "user_1_notifications"},
		{"/ws/notifications", "user_1_notifications"},
		{"/ws/projects/1/tickets/", "project_1_tickets"},
		{"/ws/projects/1/tickets", "project_1_tickets"},
		{"/ws/projects/2/presence/", "project_2_presence"},
		{"/ws/projects/2/presence", "project_2_presence"},
	} {
		for _, kind := range kinds {
			t.Run(kind+tc.path, func(t *testing.T) {
				c := mustConnect(t, kind, q(r.url+tc.path, "token", alice(t)), nil)
				c.live(t)
				if kind == wsKind && !slices.Equal(c.channels, []string{tc.channel}) {
					t.Errorf("connection_established channels: got %v, want [%s]", c.channels, tc.channel)
				}
				id := r.mustPublish(t, tc.channel, "hello", nil)
				m := c.event(t)
				for m.Env["type"] == "user_status" { // presence: alice joined project 2
					m = c.event(t)
				}
				if m.envID() != id || m.channel() != tc.channel {
					t.Errorf("event: got %v, want id %s on %s", m.Env, id, tc.channel)
				}
				c.close()
			})
		}
	}
}

// TestTokenSources checks the three places a token may come from.
func TestTokenSources(t *testing.T) {
	r := startRelay(t)
	tok := alice(t)
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
	}{
		{"query", "?token=" + tok, nil},
		{"bearer", "", http.Header{"Authorization": {"Bearer " + tok}}},
		{"cookie", "", http.Header{"Cookie": {"relay_token=" + tok}}},
	} {
		for _, kind := range kinds {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				c := mustConnect(t, kind, r.url+"/events/notifications"+tc.query, tc.header)
				c.live(t)
				id := r.mustPublish(t, "user_1_notifications", "x", nil)
				if m := c.event(t); m.envID() != id {
					t.Errorf("event id: got %q, want %q", m.envID(), id)
				}
				c.close()
			})
		}
	}
}
