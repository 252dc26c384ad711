package transport_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
)

// Presence over real connections: every relay here tracks presence as the
// app does, with the short test timers (withFastPresence).

const presenceCh = "project_1_presence"

// bobTok is user 2, member of project 1.
func bobTok(t *testing.T) string {
	return token(t, auth.Identity{UserID: "2", Name: "bob", Projects: []string{"1"}}, time.Hour)
}

// carolTok is user 3, member of project 2 only.
func carolTok(t *testing.T) string {
	return token(t, auth.Identity{UserID: "3", Name: "carol", Projects: []string{"2"}}, time.Hour)
}

// presenceURL is project 1's presence stream for tok on transport kind.
func presenceURL(r *relay, kind, tok string, kv ...string) string {
	path := "/events/projects/1/presence"
	if kind == wsKind {
		path = "/ws/projects/1/presence/"
	}
	return q(r.url+path, append([]string{"token", tok}, kv...)...)
}

func typeOf(m msg) string { s, _ := m.Env["type"].(string); return s }

// isStatus reports whether m is user_status action for userID.
func isStatus(m msg, action, userID string) bool {
	return m.Kind == "message" && typeOf(m) == "user_status" && m.Env["action"] == action && m.Env["user_id"] == userID
}

// until returns the first message for which match is true, skipping others.
func (c *client) until(t *testing.T, what string, match func(msg) bool) msg {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		m, err := c.recv(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(m) {
			return m
		}
	}
}

// quiet fails if a message for which match is true comes within d.
func (c *client) quiet(t *testing.T, d time.Duration, what string, match func(msg) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		m, err := c.recv(left)
		if err != nil {
			if strings.Contains(err.Error(), "no message within") {
				return
			}
			t.Fatalf("while checking for no %s: %v", what, err)
		}
		if match(m) {
			t.Fatalf("got %s %v, want none", what, m.Env)
		}
	}
}

// checkEphemeral fails unless m carries no id: no SSE id line, no envelope id.
func checkEphemeral(t *testing.T, m msg) {
	t.Helper()
	if m.ID != "" || m.envID() != "" {
		t.Errorf("%s: id line %q, envelope id %q; want none (not stored)", typeOf(m), m.ID, m.envID())
	}
}

// users returns the users of a presence_state message or GET answer, by id.
func users(t *testing.T, v any) map[string]map[string]any {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("users: got %v, want a list", v)
	}
	out := map[string]map[string]any{}
	for _, u := range list {
		m := u.(map[string]any)
		out[m["user_id"].(string)] = m
	}
	return out
}

// statuses returns the user_status events the log keeps for userID, as
// their actions, oldest first.
func (r *relay) statuses(t *testing.T, userID string) []string {
	t.Helper()
	var out []string
	for _, ev := range r.kept(t, presenceCh) {
		var env map[string]any
		if err := json.Unmarshal(ev.JSON(), &env); err != nil {
			t.Fatal(err)
		}
		if env["type"] == "user_status" && env["user_id"] == userID {
			out = append(out, env["action"].(string))
		}
		if env["type"] == "typing" || env["type"] == "viewing" || env["type"] == "presence_state" {
			t.Errorf("the log keeps %v; typing, viewing and presence_state are not stored", env)
		}
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestPresenceStateOnConnect: history first, then a presence_state with no
// id listing who is online, then the connection is live; a second user is
// announced to the first with a stored user_status joined, and a client
// replaying the channel learns of the first user's join.
func TestPresenceStateOnConnect(t *testing.T) {
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st), withFastPresence())
		old := r.publishN(t, presenceCh, 2)

		alice := mustConnect(t, kind, presenceURL(r, kind, alice(t), "last_event_id", old[0]), nil)
		history := alice.live(t)
		if len(history) < 2 {
			t.Fatalf("history: got %v, want the event after the cursor then presence_state", history)
		}
		state := history[len(history)-1]
		if typeOf(state) != "presence_state" {
			t.Fatalf("last before live: got %q %v, want presence_state", typeOf(state), state.Env)
		}
		checkEphemeral(t, state)
		if history[0].envID() != old[1] {
			t.Errorf("history: first got %v, want the event %s after the cursor, before presence_state", history[0].Env, old[1])
		}
		if state.channel() != presenceCh || state.Env["project_id"] != "1" {
			t.Errorf("presence_state: got %v, want channel %s, project_id \"1\"", state.Env, presenceCh)
		}
		if u := users(t, state.Env["users"]); len(u) != 1 || u["1"]["username"] != "alice" || u["1"]["viewing"] != nil || u["1"]["typing"] != nil {
			t.Errorf("presence_state users: got %v, want alice alone, viewing and typing null", state.Env["users"])
		}

		// Bob replays the channel from the start: alice's join is there,
		// stored; his state lists both.
		bob := mustConnect(t, kind, presenceURL(r, kind, bobTok(t), "last_event_id", "0"), nil)
		bh := bob.live(t)
		var sawAlice bool
		for _, m := range bh {
			if isStatus(m, "joined", "1") {
				sawAlice = true
				if m.envID() == "" || m.Env["username"] != "alice" {
					t.Errorf("alice's join in bob's history: got %v (id %q), want stored, username alice", m.Env, m.envID())
				}
			}
		}
		if !sawAlice {
			t.Errorf("bob's history: got %v, want alice's user_status joined", bh)
		}
		if st := bh[len(bh)-1]; typeOf(st) != "presence_state" || len(users(t, st.Env["users"])) != 2 {
			t.Errorf("bob's presence_state: got %v, want alice and bob", st.Env)
		}

		// Alice, live, hears bob join: a stored event with an id.
		j := alice.until(t, "bob joined", func(m msg) bool { return isStatus(m, "joined", "2") })
		if j.envID() == "" || j.ID == "" || j.Env["username"] != "bob" || j.channel() != presenceCh {
			t.Errorf("bob joined: got %v (id line %q), want a stored user_status with username bob", j.Env, j.ID)
		}
	})
}

// TestPresencePerUser: two tabs of one user announce one join; closing one
// announces nothing; closing both announces a leave after the grace period.
func TestPresencePerUser(t *testing.T) {
	t.Parallel() // it waits out grace periods and typing timeouts
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		t.Parallel()
		r := startRelay(t, withStore(st), withFastPresence())
		bob := mustConnect(t, kind, presenceURL(r, kind, bobTok(t)), nil)
		bob.live(t)

		tab1 := mustConnect(t, kind, presenceURL(r, kind, alice(t)), nil)
		tab1.live(t)
		bob.until(t, "alice joined", func(m msg) bool { return isStatus(m, "joined", "1") })
		tab2 := mustConnect(t, kind, presenceURL(r, kind, alice(t)), nil)
		if st := tab2.live(t); len(st) == 0 || len(users(t, st[len(st)-1].Env["users"])) != 2 {
			t.Errorf("second tab's presence_state: got %v, want alice and bob", st)
		}
		tab1.close()
		bob.quiet(t, 3*testGrace+600*time.Millisecond, "user_status for alice", func(m msg) bool {
			return typeOf(m) == "user_status" && m.Env["user_id"] == "1"
		})

		tab2.close()
		closed := time.Now()
		l := bob.until(t, "alice left", func(m msg) bool { return isStatus(m, "left", "1") })
		if took := time.Since(closed); took < testGrace-50*time.Millisecond {
			t.Errorf("alice left %v after her last tab closed, want after the %v grace", took, testGrace)
		}
		if l.envID() == "" || l.Env["username"] != "alice" {
			t.Errorf("alice left: got %v, want a stored user_status with username alice", l.Env)
		}
		if got := r.statuses(t, "1"); !equal(got, []string{"joined", "left"}) {
			t.Errorf("alice's user_status in the log: got %v, want [joined left]", got)
		}
		_, out := call(t, http.MethodGet, r.url+"/api/projects/1/presence", bobTok(t), "")
		if u := users(t, out["users"]); len(u) != 1 || u["2"] == nil {
			t.Errorf("GET presence after alice left: got %v, want bob alone", out)
		}
	})
}

// TestPresenceGraceReconnect: a reconnect within the grace period announces
// neither a leave nor a join.
func TestPresenceGraceReconnect(t *testing.T) {
	t.Parallel() // it waits out grace periods and typing timeouts
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		t.Parallel()
		r := startRelay(t, withStore(st), withFastPresence())
		bob := mustConnect(t, kind, presenceURL(r, kind, bobTok(t)), nil)
		bob.live(t)
		a := mustConnect(t, kind, presenceURL(r, kind, alice(t)), nil)
		a.live(t)
		bob.until(t, "alice joined", func(m msg) bool { return isStatus(m, "joined", "1") })

		a.close()
		a = mustConnect(t, kind, presenceURL(r, kind, alice(t)), nil) // a reload
		a.live(t)
		bob.quiet(t, 3*testGrace+600*time.Millisecond, "user_status for alice", func(m msg) bool {
			return typeOf(m) == "user_status" && m.Env["user_id"] == "1"
		})
		if got := r.statuses(t, "1"); !equal(got, []string{"joined"}) {
			t.Errorf("alice's user_status in the log: got %v, want [joined]", got)
		}
		a.close()
		bob.until(t, "alice left", func(m msg) bool { return isStatus(m, "left", "1") })
	})
}

// TestPresenceMultiplexed: project_1_presence among the channels of
// /events?channel=… makes the user online too.
func TestPresenceMultiplexed(t *testing.T) {
	t.Parallel() // it waits out grace periods and typing timeouts
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		t.Parallel()
		r := startRelay(t, withStore(st), withFastPresence())
		bob := mustConnect(t, kind, presenceURL(r, kind, bobTok(t)), nil)
		bob.live(t)
		a := mustConnect(t, kind, q(r.url+"/events", "channel", "project_1_tickets", "channel", presenceCh, "token", alice(t)), nil)
		h := a.live(t)
		if len(h) != 1 || typeOf(h[0]) != "presence_state" || h[0].channel() != presenceCh {
			t.Errorf("multiplexed history: got %v, want project 1's presence_state", h)
		}
		bob.until(t, "alice joined", func(m msg) bool { return isStatus(m, "joined", "1") })
		_, out := call(t, http.MethodGet, r.url+"/api/projects/1/presence", bobTok(t), "")
		if u := users(t, out["users"]); len(u) != 2 || u["1"]["username"] != "alice" {
			t.Errorf("GET presence: got %v, want alice and bob", out)
		}
		a.close()
		bob.until(t, "alice left", func(m msg) bool { return isStatus(m, "left", "1") })
	})
}

// TestPresenceTyping: typing sent over WebSocket and over HTTP reaches the
// other user's stream (either transport) as an unstored typing message,
// and ends by itself with is_typing false and ticket_id null.
func TestPresenceTyping(t *testing.T) {
	t.Parallel() // it waits out grace periods and typing timeouts
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		t.Parallel()
		r := startRelay(t, withStore(st), withFastPresence())
		bob := mustConnect(t, kind, presenceURL(r, kind, bobTok(t)), nil)
		bob.live(t)
		conn, _, err := wsDial(t, presenceURL(r, wsKind, alice(t)), nil)
		if err != nil {
			t.Fatal(err)
		}
		for m := wsNext(t, conn); m["type"] != "connection_established"; m = wsNext(t, conn) {
		}
		isTyping := func(m msg) bool { return typeOf(m) == "typing" }

		for _, via := range []string{"websocket", "http"} {
			body := `{"type":"typing","ticket_id":5,"is_typing":true}`
			sent := time.Now()
			if via == "websocket" {
				if err := conn.WriteMessage(websocket.TextMessage, []byte(body)); err != nil {
					t.Fatal(err)
				}
			} else if status, out := call(t, http.MethodPost, r.url+"/api/projects/1/presence", alice(t), body); status != http.StatusNoContent {
				t.Fatalf("POST typing: got %d %v, want 204", status, out)
			}
			m := bob.until(t, "typing via "+via, isTyping)
			checkEphemeral(t, m)
			if m.Env["user_id"] != "1" || m.Env["username"] != "alice" || m.Env["ticket_id"] != 5.0 || m.Env["is_typing"] != true || m.channel() != presenceCh {
				t.Errorf("typing via %s: got %v, want alice typing in 5 on %s", via, m.Env, presenceCh)
			}
			m = bob.until(t, "typing's end", isTyping)
			checkEphemeral(t, m)
			if m.Env["user_id"] != "1" || m.Env["is_typing"] != false || m.Env["ticket_id"] != nil {
				t.Errorf("typing's end via %s: got %v, want alice, is_typing false, ticket_id null", via, m.Env)
			}
			if took := time.Since(sent); took < testTyping-50*time.Millisecond {
				t.Errorf("typing via %s ended after %v, want after the %v timeout", via, took, testTyping)
			}
		}

		// Stopping explicitly is told at once, and nothing follows.
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"typing","ticket_id":6,"is_typing":true}`)); err != nil {
			t.Fatal(err)
		}
		bob.until(t, "typing in 6", isTyping)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"typing","ticket_id":6,"is_typing":false}`)); err != nil {
			t.Fatal(err)
		}
		if m := bob.until(t, "typing stopped", isTyping); m.Env["is_typing"] != false {
			t.Errorf("typing stopped: got %v, want is_typing false", m.Env)
		}
		bob.quiet(t, testTyping+700*time.Millisecond, "typing after a stop", isTyping)
		r.statuses(t, "1") // fails if typing was stored
	})
}

// TestPresenceViewing: viewing over WebSocket and HTTP reaches the other
// user unstored, shows in GET presence and in a new connection's
// presence_state, and null stops it.
func TestPresenceViewing(t *testing.T) {
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st), withFastPresence())
		bob := mustConnect(t, kind, presenceURL(r, kind, bobTok(t)), nil)
		bob.live(t)
		conn, _, err := wsDial(t, presenceURL(r, wsKind, alice(t)), nil)
		if err != nil {
			t.Fatal(err)
		}
		for m := wsNext(t, conn); m["type"] != "connection_established"; m = wsNext(t, conn) {
		}
		isViewing := func(m msg) bool { return typeOf(m) == "viewing" }
		viewingOf := func(tok string) any {
			t.Helper()
			status, out := call(t, http.MethodGet, r.url+"/api/projects/1/presence", tok, "")
			if status != http.StatusOK || out["project_id"] != "1" {
				t.Fatalf("GET presence: got %d %v, want 200 for project \"1\"", status, out)
			}
			u := users(t, out["users"])["1"]
			if u == nil {
				t.Fatalf("GET presence: got %v, want alice online", out)
			}
			return u["viewing"]
		}

		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"viewing","ticket_id":5}`)); err != nil {
			t.Fatal(err)
		}
		m := bob.until(t, "viewing 5", isViewing)
		checkEphemeral(t, m)
		if m.Env["user_id"] != "1" || m.Env["username"] != "alice" || m.Env["ticket_id"] != 5.0 {
			t.Errorf("viewing: got %v, want alice viewing 5", m.Env)
		}
		if v := viewingOf(bobTok(t)); v != 5.0 {
			t.Errorf("GET presence: alice views %v, want 5", v)
		}
		other := mustConnect(t, kind, presenceURL(r, kind, bobTok(t)), nil)
		if h := other.live(t); len(h) == 0 || users(t, h[len(h)-1].Env["users"])["1"]["viewing"] != 5.0 {
			t.Errorf("presence_state: got %v, want alice viewing 5", h)
		}

		// Over HTTP, as an SSE client does.
		if status, out := call(t, http.MethodPost, r.url+"/api/projects/1/presence", alice(t), `{"type":"viewing","ticket_id":8}`); status != http.StatusNoContent {
			t.Fatalf("POST viewing: got %d %v, want 204", status, out)
		}
		if m := bob.until(t, "viewing 8", isViewing); m.Env["ticket_id"] != 8.0 {
			t.Errorf("viewing over HTTP: got %v, want ticket 8", m.Env)
		}
		if v := viewingOf(alice(t)); v != 8.0 {
			t.Errorf("GET presence: alice views %v, want 8", v)
		}

		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"viewing","ticket_id":null}`)); err != nil {
			t.Fatal(err)
		}
		m = bob.until(t, "viewing stopped", isViewing)
		if v, ok := m.Env["ticket_id"]; !ok || v != nil {
			t.Errorf("viewing stopped: got %v, want ticket_id null", m.Env)
		}
		if v := viewingOf(bobTok(t)); v != nil {
			t.Errorf("GET presence: alice views %v, want null", v)
		}
		r.statuses(t, "1") // fails if viewing was stored
	})
}

// TestPresenceActionRefusals: POST and GET /api/projects/{id}/presence
// refuse non-members, bad bodies and missing tokens with JSON errors.
func TestPresenceActionRefusals(t *testing.T) {
	r := startRelay(t, withFastPresence())
	typing := `{"type":"typing","ticket_id":5,"is_typing":true}`
	for _, tc := range []struct {
		name, method, path, tok, body string
		status                        int
		code                          string
	}{
		{"not a member", http.MethodPost, "/api/projects/1/presence", carolTok(t), typing, 403, "forbidden"},
		{"not a member, GET", http.MethodGet, "/api/projects/1/presence", carolTok(t), "", 403, "forbidden"},
		{"no token", http.MethodPost, "/api/projects/1/presence", "", typing, 401, ""},
		{"no token, GET", http.MethodGet, "/api/projects/1/presence", "", "", 401, ""},
		{"not JSON", http.MethodPost, "/api/projects/1/presence", alice(t), `typing`, 400, "bad_request"},
		{"empty body", http.MethodPost, "/api/projects/1/presence", alice(t), ``, 400, "bad_request"},
		{"unknown type", http.MethodPost, "/api/projects/1/presence", alice(t), `{"type":"dancing"}`, 400, "bad_request"},
		{"typing without is_typing", http.MethodPost, "/api/projects/1/presence", alice(t), `{"type":"typing","ticket_id":5}`, 400, "bad_request"},
		{"typing without ticket", http.MethodPost, "/api/projects/1/presence", alice(t), `{"type":"typing","is_typing":true}`, 400, "bad_request"},
		{"ticket not a number", http.MethodPost, "/api/projects/1/presence", alice(t), `{"type":"viewing","ticket_id":"5x"}`, 400, "bad_request"},
		{"bad project id", http.MethodPost, "/api/projects/a.b/presence", alice(t), typing, 400, "bad_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, r.url+tc.path, strings.NewReader(tc.body))
			if tc.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tc.tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d: %s, want %d", resp.StatusCode, readAll(t, resp.Body), tc.status)
			}
			if code := errorJSON(t, resp); tc.code != "" && code != tc.code {
				t.Errorf("error: got %q, want %q", code, tc.code)
			}
		})
	}
	// Nothing was recorded: alice is neither viewing nor typing, nor online.
	_, out := call(t, http.MethodGet, r.url+"/api/projects/1/presence", alice(t), "")
	if u := users(t, out["users"]); len(u) != 0 {
		t.Errorf("GET presence after refusals: got %v, want nobody", out)
	}
}

// TestPresenceWSNeedsProject: a WebSocket reading two presence channels must
// say which project an action is for; without it the answer is an error
// message and the connection stays open; with it the action goes through.
func TestPresenceWSNeedsProject(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st), withFastPresence())
		bob := mustConnect(t, sseKind, presenceURL(r, sseKind, bobTok(t)), nil)
		bob.live(t)
		conn, _, err := wsDial(t, q(r.url+"/events", "channel", presenceCh, "channel", "project_2_presence", "token", alice(t)), nil)
		if err != nil {
			t.Fatal(err)
		}
		var states int
		for m := wsNext(t, conn); m["type"] != "connection_established"; m = wsNext(t, conn) {
			if m["type"] == "presence_state" {
				states++
			}
		}
		if states != 2 {
			t.Errorf("got %d presence_state messages, want one per project", states)
		}
		next := func(typ string) map[string]any {
			t.Helper()
			for {
				if m := wsNext(t, conn); m["type"] == typ {
					return m
				}
			}
		}
		send := func(s string) {
			t.Helper()
			if err := conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		isTyping := func(m msg) bool { return typeOf(m) == "typing" }

		send(`{"type":"typing","ticket_id":5,"is_typing":true}`)
		m := next("error")
		if msg, _ := m["message"].(string); m["error"] != "bad_request" || m["request"] != "typing" || !strings.Contains(msg, "project_id") {
			t.Errorf("error: got %v, want bad_request for typing, naming project_id", m)
		}
		send(`{"type":"ping","timestamp":7}`)
		if m := next("pong"); m["timestamp"] != 7.0 {
			t.Errorf("after the error: got %v, want pong 7 (the connection stays open)", m)
		}

		send(`{"type":"typing","ticket_id":5,"is_typing":true,"project_id":"1"}`)
		if m := bob.until(t, "typing", isTyping); m.Env["user_id"] != "1" || m.Env["ticket_id"] != 5.0 {
			t.Errorf("typing with project_id: got %v, want alice typing in 5", m.Env)
		}
		send(`{"type":"viewing","ticket_id":9,"project_id":1}`)
		if m := bob.until(t, "viewing", func(m msg) bool { return typeOf(m) == "viewing" }); m.Env["ticket_id"] != 9.0 {
			t.Errorf("viewing with a numeric project_id: got %v, want ticket 9", m.Env)
		}
		// A project the token is not a member of.
		send(`{"type":"viewing","ticket_id":9,"project_id":"3"}`)
		if m := next("error"); m["error"] != "forbidden" {
			t.Errorf("viewing in project 3: got %v, want forbidden", m)
		}
		send(`{"type":"ping"}`)
		next("pong")
	})
}
