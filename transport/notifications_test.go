package transport_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Notifications over real connections, over both stores: every relay keeps
// what is published to user_{id}_notifications, as the app does.

const aliceNotes = "user_1_notifications"

// publishNotes publishes n notifications to channel with data.id
// "<key>-1" … "<key>-n" and returns their envelope ids, oldest first.
func (r *relay) publishNotes(t *testing.T, channel, key string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = r.mustPublish(t, channel, "notification_message", map[string]any{"id": fmt.Sprintf("%s-%d", key, i+1), "title": i})
	}
	return ids
}

// page is one GET /api/notifications answer.
type page struct {
	ids    []string // envelope ids, in order
	keys   []any    // data.id of each
	read   []bool
	unread float64
	more   bool
}

// notes GETs /api/notifications with query and fails unless it is a 200.
func (r *relay) notes(t *testing.T, tok, query string) page {
	t.Helper()
	status, out := call(t, http.MethodGet, r.url+"/api/notifications"+query, tok, "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/notifications%s: got %d %v, want 200", query, status, out)
	}
	var p page
	p.unread, _ = out["unread_count"].(float64)
	p.more, _ = out["more"].(bool)
	items, ok := out["notifications"].([]any)
	if !ok {
		t.Fatalf("GET /api/notifications%s: got %v, want a notifications list", query, out)
	}
	for _, it := range items {
		n := it.(map[string]any)
		id, _ := n["id"].(string)
		read, ok := n["read"].(bool)
		if !ok || n["channel"] != aliceNotes && !strings.HasPrefix(n["channel"].(string), "user_") || n["type"] != "notification_message" {
			t.Errorf("notification: got %v, want the envelope with a read flag", n)
		}
		data, _ := n["data"].(map[string]any)
		p.ids, p.read, p.keys = append(p.ids, id), append(p.read, read), append(p.keys, data["id"])
	}
	return p
}

// markRead POSTs body to /api/notifications/read and returns the status,
// the changed ids and the unread count.
func (r *relay) markRead(t *testing.T, tok, body string) (int, []string, float64) {
	t.Helper()
	status, out := call(t, http.MethodPost, r.url+"/api/notifications/read", tok, body)
	var ids []string
	if list, ok := out["ids"].([]any); ok {
		ids = []string{}
		for _, id := range list {
			ids = append(ids, id.(string))
		}
	}
	unread, _ := out["unread_count"].(float64)
	return status, ids, unread
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// isRead matches a notification_read event.
func isRead(m msg) bool { return m.Kind == "message" && typeOf(m) == "notification_read" }

// readIDs returns a notification_read event's ids.
func readIDs(m msg) []string {
	var out []string
	list, _ := m.Env["ids"].([]any)
	for _, id := range list {
		s, _ := id.(string)
		out = append(out, s)
	}
	return out
}

// TestNotificationsHistory: what is published to a user's channel is listed
// newest first, unread, and pages with limit and before.
func TestNotificationsHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		ids := r.publishNotes(t, aliceNotes, "n", 5)
		r.publishNotes(t, "user_2_notifications", "b", 2)
		r.mustPublish(t, "project_1_tickets", "notification_message", map[string]any{"id": "t-1"})

		all := r.notes(t, alice(t), "")
		if !slices.Equal(all.ids, reversed(ids)) {
			t.Errorf("list: got %v, want %v (newest first, alice's only)", all.ids, reversed(ids))
		}
		if want := []any{"n-5", "n-4", "n-3", "n-2", "n-1"}; !slices.Equal(all.keys, want) {
			t.Errorf("data.id: got %v, want %v", all.keys, want)
		}
		if slices.Contains(all.read, true) || all.unread != 5 || all.more {
			t.Errorf("list: got read %v, unread %v, more %v; want all unread, 5, no more", all.read, all.unread, all.more)
		}

		// Pages of two: before is the last id of the previous page.
		var got []string
		before := ""
		for i, want := range [][]string{{ids[4], ids[3]}, {ids[2], ids[1]}, {ids[0]}} {
			query := "?limit=2"
			if before != "" {
				query += "&before=" + before
			}
			p := r.notes(t, alice(t), query)
			if !slices.Equal(p.ids, want) || p.more != (i < 2) || p.unread != 5 {
				t.Errorf("page %d (%s): got %v more %v unread %v, want %v more %v unread 5", i, query, p.ids, p.more, p.unread, want, i < 2)
			}
			got = append(got, p.ids...)
			if len(p.ids) > 0 {
				before = p.ids[len(p.ids)-1]
			}
		}
		if !slices.Equal(got, reversed(ids)) {
			t.Errorf("pages together: got %v, want %v", got, reversed(ids))
		}
		if p := r.notes(t, alice(t), "?limit=5&before="+ids[0]); len(p.ids) != 0 || p.more {
			t.Errorf("before the oldest: got %v more %v, want nothing", p.ids, p.more)
		}

		// Bob sees only his own.
		if p := r.notes(t, bobTok(t), ""); len(p.ids) != 2 || p.unread != 2 || p.keys[0] != "b-2" {
			t.Errorf("bob's list: got %v %v unread %v, want b-2, b-1 unread", p.ids, p.keys, p.unread)
		}
	})
}

// TestNotificationsMarkRead marks read by envelope id and by data.id, over
// HTTP and over WebSocket, then all; another tab of the user (either
// transport) hears each change as a stored notification_read event with the
// ids and the new unread count; marking what is read already changes
// nothing and announces nothing.
func TestNotificationsMarkRead(t *testing.T) {
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		path := "/events/notifications"
		if kind == wsKind {
			path = "/ws/notifications/"
		}
		tab := mustConnect(t, kind, q(r.url+path, "token", alice(t)), nil)
		tab.live(t)
		conn, _, err := wsDial(t, q(r.url+"/ws/notifications/", "token", alice(t)), nil)
		if err != nil {
			t.Fatal(err)
		}
		for m := wsNext(t, conn); m["type"] != "connection_established"; m = wsNext(t, conn) {
		}
		ids := r.publishNotes(t, aliceNotes, "n", 5)
		numeric := r.mustPublish(t, aliceNotes, "notification_message", map[string]any{"id": 42})
		for range 6 {
			tab.event(t)
		}

		heard := func(how string, want []string, unread float64) {
			t.Helper()
			m := tab.until(t, "notification_read after "+how, isRead)
			if !slices.Equal(readIDs(m), want) || m.Env["unread_count"] != unread || m.envID() == "" || m.channel() != aliceNotes {
				t.Errorf("notification_read after %s: got %v (id %q), want ids %v, unread_count %v, stored on %s", how, m.Env, m.envID(), want, unread, aliceNotes)
			}
		}
		check := func(how string, status int, changed []string, unread float64, want []string, wantUnread float64) {
			t.Helper()
			if status != http.StatusOK || !slices.Equal(changed, want) || unread != wantUnread {
				t.Errorf("%s: got %d ids %v unread %v, want 200 ids %v unread %v", how, status, changed, unread, want, wantUnread)
			}
			heard(how, want, wantUnread)
		}
		wsSend := func(s string) {
			t.Helper()
			if err := conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
				t.Fatal(err)
			}
		}

		status, changed, unread := r.markRead(t, alice(t), `{"ids":["`+ids[0]+`"]}`)
		check("HTTP by envelope id", status, changed, unread, []string{ids[0]}, 5)
		status, changed, unread = r.markRead(t, alice(t), `{"ids":["n-2","n-3"]}`)
		check("HTTP by data.id", status, changed, unread, []string{ids[1], ids[2]}, 3)
		wsSend(`{"type":"mark_read","id":"n-4"}`)
		heard("WebSocket by data.id", []string{ids[3]}, 2)
		wsSend(`{"type":"mark_read","id":"` + ids[4] + `"}`)
		heard("WebSocket by envelope id", []string{ids[4]}, 1)
		wsSend(`{"type":"mark_read","id":42}`)
		heard("WebSocket by a numeric data.id", []string{numeric}, 0)

		p := r.notes(t, alice(t), "")
		if slices.Contains(p.read, false) || p.unread != 0 || len(p.ids) != 6 {
			t.Errorf("after marking every one: got %v read %v unread %v, want 6, all read (notification_read is not a notification)", p.ids, p.read, p.unread)
		}

		// Again: nothing changes, nothing is announced.
		status, changed, unread = r.markRead(t, alice(t), `{"ids":["n-1"]}`)
		if status != http.StatusOK || len(changed) != 0 || changed == nil || unread != 0 {
			t.Errorf("marking a read one again: got %d ids %v unread %v, want 200 ids [] unread 0", status, changed, unread)
		}
		if status, changed, _ := r.markRead(t, alice(t), `{"all":true}`); status != http.StatusOK || len(changed) != 0 {
			t.Errorf("all, with none unread: got %d ids %v, want 200 ids []", status, changed)
		}
		tab.quiet(t, 300*time.Millisecond, "notification_read for no change", isRead)

		// {"all":true} marks the newer ones.
		more := r.publishNotes(t, aliceNotes, "m", 2)
		status, changed, unread = r.markRead(t, alice(t), `{"all":true}`)
		slices.Sort(changed)
		want := slices.Sorted(slices.Values(more))
		if status != http.StatusOK || !slices.Equal(changed, want) || unread != 0 {
			t.Errorf("all: got %d ids %v unread %v, want ids %v unread 0", status, changed, unread, want)
		}
		m := tab.until(t, "notification_read after all", isRead)
		if got := slices.Sorted(slices.Values(readIDs(m))); !slices.Equal(got, want) || m.Env["unread_count"] != 0.0 {
			t.Errorf("notification_read after all: got %v, want ids %v unread 0", m.Env, want)
		}
	})
}

// TestNotificationsOwnerOnly: a user cannot mark another user's
// notifications, by either id, over either path; the answer is 404 and
// nothing changes for anyone; marking is all or nothing.
func TestNotificationsOwnerOnly(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		mine := r.publishNotes(t, aliceNotes, "n", 2)
		bobs := r.publishNotes(t, "user_2_notifications", "b", 2)
		tab := mustConnect(t, sseKind, q(r.url+"/events/notifications", "token", alice(t)), nil)
		tab.live(t)

		for _, body := range []string{
			`{"ids":["` + bobs[0] + `"]}`,
			`{"ids":["b-1"]}`,
			`{"ids":["` + mine[0] + `","` + bobs[1] + `"]}`,
			`{"ids":["n-2","no-such-id"]}`,
		} {
			resp := post(t, r.url+"/api/notifications/read", alice(t), body)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: got %d, want 404", body, resp.StatusCode)
			}
			if code := errorJSON(t, resp); code != "not_found" {
				t.Errorf("%s: error %q, want not_found", body, code)
			}
		}
		conn, _, err := wsDial(t, q(r.url+"/ws/notifications/", "token", alice(t)), nil)
		if err != nil {
			t.Fatal(err)
		}
		for m := wsNext(t, conn); m["type"] != "connection_established"; m = wsNext(t, conn) {
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"mark_read","id":"b-2"}`)); err != nil {
			t.Fatal(err)
		}
		if m := wsNext(t, conn); m["type"] != "error" || m["error"] != "not_found" || m["request"] != "mark_read" {
			t.Errorf("WebSocket mark_read of bob's: got %v, want a not_found error", m)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"mark_read"}`)); err != nil {
			t.Fatal(err)
		}
		if m := wsNext(t, conn); m["type"] != "error" || m["error"] != "bad_request" {
			t.Errorf("WebSocket mark_read without id: got %v, want a bad_request error", m)
		}

		if p := r.notes(t, alice(t), ""); p.unread != 2 || slices.Contains(p.read, true) {
			t.Errorf("alice's after refusals: got read %v unread %v, want both unread", p.read, p.unread)
		}
		if p := r.notes(t, bobTok(t), ""); p.unread != 2 || slices.Contains(p.read, true) {
			t.Errorf("bob's after refusals: got read %v unread %v, want both unread", p.read, p.unread)
		}
		tab.quiet(t, 300*time.Millisecond, "notification_read after refusals", isRead)
	})
}

// post POSTs body with tok; the caller reads the response.
func post(t *testing.T, url, tok, body string) *http.Response {
	t.Helper()
	return do(t, http.MethodPost, url, tok, body)
}

func do(t *testing.T, method, url, tok, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestNotificationsRefusals: bad bodies and bad paging are 400, no token is
// 401, each with a JSON error; nothing is marked.
func TestNotificationsRefusals(t *testing.T) {
	r := startRelay(t)
	ids := r.publishNotes(t, aliceNotes, "n", 1)
	for _, tc := range []struct {
		name, method, query, tok, body string
		status                         int
	}{
		{"empty object", http.MethodPost, "", alice(t), `{}`, 400},
		{"ids and all", http.MethodPost, "", alice(t), `{"ids":["` + ids[0] + `"],"all":true}`, 400},
		{"empty ids", http.MethodPost, "", alice(t), `{"ids":[]}`, 400},
		{"empty id", http.MethodPost, "", alice(t), `{"ids":[""]}`, 400},
		{"all false", http.MethodPost, "", alice(t), `{"all":false}`, 400},
		{"not JSON", http.MethodPost, "", alice(t), `ids`, 400},
		{"ids not a list", http.MethodPost, "", alice(t), `{"ids":"n-1"}`, 400},
		{"limit=0", http.MethodGet, "?limit=0", alice(t), "", 400},
		{"limit=201", http.MethodGet, "?limit=201", alice(t), "", 400},
		{"limit=x", http.MethodGet, "?limit=x", alice(t), "", 400},
		{"before garbage", http.MethodGet, "?before=nope", alice(t), "", 400},
		{"no token, GET", http.MethodGet, "", "", "", 401},
		{"no token, POST", http.MethodPost, "", "", `{"all":true}`, 401},
		{"bad token, POST", http.MethodPost, "", "x.y.z", `{"all":true}`, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := r.url + "/api/notifications" + tc.query
			if tc.method == http.MethodPost {
				url = r.url + "/api/notifications/read"
			}
			resp := do(t, tc.method, url, tc.tok, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d: %s, want %d", resp.StatusCode, readAll(t, resp.Body), tc.status)
			}
			errorJSON(t, resp)
		})
	}
	if p := r.notes(t, alice(t), "?limit=200"); p.unread != 1 || p.read[0] {
		t.Errorf("after refusals: got read %v unread %v, want the one unread", p.read, p.unread)
	}
}
