package transport_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// startFullRelay is a relay wired as app wires it: notifications kept,
// presence tracked (memory stores, short presence timers).
func startFullRelay(t *testing.T) *relay {
	t.Helper()
	return startRelay(t, withPresence(events.PresenceConfig{
		Grace: 200 * time.Millisecond, TypingTimeout: 700 * time.Millisecond, HoldTTL: 3 * time.Second,
	}))
}

// call sends an API request with tok and decodes the JSON answer.
func call(t *testing.T, method, url, tok, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// nextOfType returns the next event of type typ on s, skipping others.
func nextOfType(t *testing.T, s *sse, typ string) (frame, map[string]any) {
	t.Helper()
	for {
		f := s.next(t)
		if env := envelope(t, f.Data); env["type"] == typ {
			return f, env
		}
	}
}

func TestNotificationsHistoryAndReadState(t *testing.T) {
	r := startFullRelay(t)
	bob := token(t, auth.Identity{UserID: "2", Name: "bob", Projects: []string{"1"}}, time.Hour)
	tab1, _ := openSSE(t, r.url+"/events/notifications?token="+alice(t), nil)
	tab2, _ := openSSE(t, r.url+"/events/notifications?token="+alice(t), nil)
	ws, _, err := wsDial(t, r.url+"/ws/notifications/?token="+alice(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	wsNext(t, ws) // connection_established
	var ids []string
	for _, key := range []string{"n-1", "n-2", "n-3"} {
		ids = append(ids, r.mustPublish(t, "user_1_notifications", "notification_message", map[string]any{"id": key}))
	}
	for range ids {
		tab2.next(t)
	}

	status, page := call(t, http.MethodGet, r.url+"/api/notifications?limit=2", alice(t), "")
	items, _ := page["notifications"].([]any)
	if status != http.StatusOK || len(items) != 2 || page["unread_count"] != 3.0 || page["more"] != true {
		t.Fatalf("first page: got %d %v, want 2 of 3 unread, more", status, page)
	}
	first, second := items[0].(map[string]any), items[1].(map[string]any)
	if first["id"] != ids[2] || second["id"] != ids[1] || first["read"] != false {
		t.Errorf("first page: got %v, %v; want %s then %s, unread", first["id"], second["id"], ids[2], ids[1])
	}
	_, page = call(t, http.MethodGet, r.url+"/api/notifications?limit=2&before="+ids[1], alice(t), "")
	if items, _ := page["notifications"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != ids[0] || page["more"] != false {
		t.Errorf("second page: got %v, want %s alone, no more", page, ids[0])
	}

	// Mark read over HTTP by the notification's own id: the other tab hears it.
	status, out := call(t, http.MethodPost, r.url+"/api/notifications/read", alice(t), `{"ids":["n-1"]}`)
	if status != http.StatusOK || out["unread_count"] != 2.0 {
		t.Fatalf("mark read: got %d %v, want unread 2", status, out)
	}
	_, ev := nextOfType(t, tab2, "notification_read")
	if got, _ := ev["ids"].([]any); ev["unread_count"] != 2.0 || len(got) != 1 || got[0] != ids[0] {
		t.Errorf("notification_read: got %v, want ids [%s] and unread 2", ev, ids[0])
	}

	// Someone else's notification: 404, nothing changes.
	if status, out := call(t, http.MethodPost, r.url+"/api/notifications/read", bob, `{"ids":["n-2"]}`); status != http.StatusNotFound {
		t.Errorf("bob marking alice's: got %d %v, want 404", status, out)
	}
	// Over WebSocket, as the app's clients do.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"mark_read","id":"n-2"}`)); err != nil {
		t.Fatal(err)
	}
	_, ev = nextOfType(t, tab1, "notification_read")
	_, ev = nextOfType(t, tab1, "notification_read") // the first was n-1's
	if ev["unread_count"] != 1.0 {
		t.Errorf("after WebSocket mark_read: got %v, want unread 1", ev)
	}
	for _, tt := range []struct{ name, body string }{{"empty", `{}`}, {"both", `{"ids":["n-3"],"all":true}`}, {"not json", `x`}} {
		if status, _ := call(t, http.MethodPost, r.url+"/api/notifications/read", alice(t), tt.body); status != http.StatusBadRequest {
			t.Errorf("%s body: got %d, want 400", tt.name, status)
		}
	}
	if status, _ := call(t, http.MethodGet, r.url+"/api/notifications", "", ""); status != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", status)
	}
	status, out = call(t, http.MethodPost, r.url+"/api/notifications/read", alice(t), `{"all":true}`)
	if status != http.StatusOK || out["unread_count"] != 0.0 {
		t.Errorf("mark all: got %d %v, want unread 0", status, out)
	}
}

func TestPresenceOverHTTPForSSEClients(t *testing.T) {
	r := startFullRelay(t)
	bob := token(t, auth.Identity{UserID: "2", Name: "bob", Projects: []string{"1"}}, time.Hour)
	onBob, _ := openSSE(t, r.url+"/events/projects/1/presence?token="+bob, nil)
	f, state := nextOfType(t, onBob, "presence_state")
	if f.HasID {
		t.Errorf("presence_state has id line %q; want none (it is not stored)", f.ID)
	}
	if users, _ := state["users"].([]any); len(users) != 1 {
		t.Errorf("presence_state: got %v, want bob alone", state)
	}
	// Alice comes online through a multiplexed connection.
	openSSE(t, r.url+"/events?channel=project_1_presence&channel=project_1_tickets&token="+alice(t), nil)
	if _, ev := nextOfType(t, onBob, "user_status"); ev["action"] != "joined" || ev["user_id"] != "1" {
		t.Errorf("user_status: got %v, want alice joined", ev)
	}
	status, _ := call(t, http.MethodPost, r.url+"/api/projects/1/presence", alice(t), `{"type":"typing","ticket_id":5,"is_typing":true}`)
	if status != http.StatusNoContent {
		t.Fatalf("typing: got %d, want 204", status)
	}
	f, ev := nextOfType(t, onBob, "typing")
	if f.HasID || ev["is_typing"] != true || ev["ticket_id"] != 5.0 || ev["username"] != "alice" {
		t.Errorf("typing: got %v (id line %v), want alice typing in 5, not stored", ev, f.HasID)
	}
	if _, ev := nextOfType(t, onBob, "typing"); ev["is_typing"] != false {
		t.Errorf("typing after the timeout: got %v, want is_typing false", ev)
	}
	if status, _ := call(t, http.MethodPost, r.url+"/api/projects/1/presence", alice(t), `{"type":"viewing","ticket_id":7}`); status != http.StatusNoContent {
		t.Fatalf("viewing: got %d, want 204", status)
	}
	nextOfType(t, onBob, "viewing")
	_, got := call(t, http.MethodGet, r.url+"/api/projects/1/presence", bob, "")
	if users, _ := got["users"].([]any); len(users) != 2 || users[0].(map[string]any)["viewing"] != 7.0 {
		t.Errorf("GET presence: got %v, want alice viewing 7 and bob", got)
	}
	carol := token(t, auth.Identity{UserID: "3", Name: "carol", Projects: []string{"2"}}, time.Hour)
	for _, tt := range []struct {
		name, tok, body string
		want            int
	}{
		{"not a member", carol, `{"type":"viewing","ticket_id":1}`, http.StatusForbidden},
		{"no token", "", `{"type":"viewing","ticket_id":1}`, http.StatusUnauthorized},
		{"bad type", bob, `{"type":"dancing"}`, http.StatusBadRequest},
		{"typing without ticket", bob, `{"type":"typing","is_typing":true}`, http.StatusBadRequest},
		{"bad ticket", bob, `{"type":"viewing","ticket_id":"x"}`, http.StatusBadRequest},
	} {
		if status, out := call(t, http.MethodPost, r.url+"/api/projects/1/presence", tt.tok, tt.body); status != tt.want {
			t.Errorf("%s: got %d %v, want %d", tt.name, status, out, tt.want)
		}
	}
}
