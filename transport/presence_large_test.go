package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// A large project: 1,000 users online with 150-character names, whose full
// list (about 230 KiB) is far over the publisher's 64 KiB limit.

const (
	largeUsers   = 1000
	largeNameLen = 150
)

// largeName is user id's display name, largeNameLen bytes, told apart by id.
func largeName(id string) string {
	return id + ":" + strings.Repeat("n", largeNameLen-len(id)-1)
}

// fillProject puts largeUsers users online in project 1 through the relay's
// tracker (the call a presence connection makes), with ids 1000…1999, and
// returns their ids. They go offline when the test ends.
func fillProject(t *testing.T, r *relay) []string {
	t.Helper()
	ids := make([]string, largeUsers)
	for i := range ids {
		ids[i] = fmt.Sprint(1000 + i)
		release, err := r.tracker.Connect(context.Background(), "1", ids[i], largeName(ids[i]))
		if err != nil {
			t.Fatalf("user %s online: %v", ids[i], err)
		}
		t.Cleanup(release)
	}
	return ids
}

// checkBoundedState checks a presence_state of project 1 with count users
// online: at most PresenceStateMaxUsers of them, the first ones by user id,
// and more set.
func checkBoundedState(t *testing.T, st msg, count int) {
	t.Helper()
	if typeOf(st) != "presence_state" || st.channel() != presenceCh {
		t.Fatalf("got %v, want project 1's presence_state", st.Env)
	}
	checkEphemeral(t, st)
	if got, _ := st.Env["count"].(float64); int(got) != count {
		t.Errorf("presence_state count: got %v, want %d", st.Env["count"], count)
	}
	if st.Env["more"] != true {
		t.Errorf("presence_state more: got %v, want true", st.Env["more"])
	}
	list, _ := st.Env["users"].([]any)
	if len(list) == 0 || len(list) > events.PresenceStateMaxUsers {
		t.Fatalf("presence_state lists %d users; want 1 to %d", len(list), events.PresenceStateMaxUsers)
	}
	if first := list[0].(map[string]any); first["user_id"] != "1000" || first["username"] != largeName("1000") {
		t.Errorf("presence_state's first user: got %v, want user 1000", first)
	}
	if raw, _ := json.Marshal(list); len(raw) > events.PresenceStateMaxBytes {
		t.Errorf("presence_state's users are %d bytes; want at most %d", len(raw), events.PresenceStateMaxBytes)
	}
}

// pageAll reads GET /api/projects/1/presence page by page, limit users at a
// time, and returns every user id in the order given, checking each page.
func pageAll(t *testing.T, r *relay, tok string, limit, count int) []string {
	t.Helper()
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > count/limit+1 {
			t.Fatalf("still more after %d pages of %d for %d users", pages, limit, count)
		}
		url := q(r.url+"/api/projects/1/presence", "limit", fmt.Sprint(limit))
		if after != "" {
			url = q(url, "after", after)
		}
		code, out := call(t, http.MethodGet, url, tok, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", url, code, out)
		}
		if got, _ := out["count"].(float64); int(got) != count {
			t.Errorf("page after %q: count %v, want %d", after, out["count"], count)
		}
		list, _ := out["users"].([]any)
		if len(list) > limit {
			t.Fatalf("page after %q has %d users; want at most %d", after, len(list), limit)
		}
		for _, u := range list {
			m := u.(map[string]any)
			id, _ := m["user_id"].(string)
			if strings.HasPrefix(id, "1") && len(id) == 4 && m["username"] != largeName(id) {
				t.Errorf("user %s: username %v, want %s", id, m["username"], largeName(id))
			}
			ids = append(ids, id)
		}
		if out["more"] != true {
			return ids
		}
		if len(list) == 0 {
			t.Fatalf("page after %q: more with no users", after)
		}
		after = ids[len(ids)-1]
	}
}

// TestPresenceLargeProject: with 1,000 users online with 150-character
// names, a new presence connection and a page's multiplexed connection (its
// notifications and the project's presence) both open, over either
// transport and store, each with a bounded presence_state; the HTTP pages
// list every user exactly once, in user id order; and nobody who connected
// is announced as left (no join/leave churn).
func TestPresenceLargeProject(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st string) {
		t.Parallel()
		r := startRelay(t, withStore(st), withFastPresence())
		want := fillProject(t, r)
		var watchers []*client
		for _, kind := range kinds {
			newID, muxID := "new-"+kind, "mux-"+kind
			newTok := token(t, auth.Identity{UserID: newID, Name: largeName(newID), Projects: []string{"1"}}, time.Hour)
			muxTok := token(t, auth.Identity{UserID: muxID, Name: largeName(muxID), Projects: []string{"1"}}, time.Hour)

			a := mustConnect(t, kind, presenceURL(r, kind, newTok), nil)
			h := a.live(t)
			want = append(want, newID)
			if len(h) != 1 {
				t.Fatalf("%s presence connection before live: got %d messages, want the presence_state", kind, len(h))
			}
			checkBoundedState(t, h[0], len(want))

			b := mustConnect(t, kind, q(r.url+"/events", "channel", "user_"+muxID+"_notifications",
				"channel", presenceCh, "token", muxTok), nil)
			h = b.live(t)
			want = append(want, muxID)
			if len(h) != 1 {
				t.Fatalf("%s multiplexed connection before live: got %d messages, want the presence_state", kind, len(h))
			}
			checkBoundedState(t, h[0], len(want))
			a.until(t, muxID+" joined", func(m msg) bool { return isStatus(m, "joined", muxID) })
			watchers = append(watchers, a, b)
		}

		tok := token(t, auth.Identity{UserID: "reader", Projects: []string{"1"}}, time.Hour)
		checkEveryOnce(t, pageAll(t, r, tok, 300, len(want)), want)
		checkEveryOnce(t, pageAll(t, r, tok, events.MaxPresencePage, len(want)), want)

		// Past several grace periods, all four are still online, joined once.
		watchers[0].quiet(t, 3*testGrace, "a user left", func(m msg) bool {
			return typeOf(m) == "user_status" && m.Env["action"] == "left"
		})
		for _, id := range want[largeUsers:] {
			if got := r.statuses(t, id); !equal(got, []string{"joined"}) {
				t.Errorf("%s's user_status in the log: got %v, want [joined]", id, got)
			}
		}
	})
}

// checkEveryOnce fails unless got holds every id of want exactly once, and
// nothing else, in byte order of user id.
func checkEveryOnce(t *testing.T, got, want []string) {
	t.Helper()
	seen := make(map[string]int, len(got))
	for i, id := range got {
		seen[id]++
		if i > 0 && got[i-1] >= id {
			t.Errorf("pages: %q after %q; want user id order, each once", id, got[i-1])
		}
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("pages: user %s listed %d times; want once", id, seen[id])
		}
		delete(seen, id)
	}
	for id := range seen {
		t.Errorf("pages: user %s listed; want only users online", id)
	}
}

// TestPresencePageQuery: GET /api/projects/{id}/presence answers a page of
// DefaultPresencePage users without a limit, and 400 with what to send for a
// limit out of 1…MaxPresencePage or an after that is no user id. The paging
// itself is the tracker's, the same over either store (see
// TestPresenceLargeProject); this checks the query alone.
func TestPresencePageQuery(t *testing.T) {
	t.Parallel()
	r := startRelay(t)
	for i := range events.DefaultPresencePage + 1 {
		release, err := r.tracker.Connect(context.Background(), "1", fmt.Sprint(1000+i), "u")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(release)
	}
	code, out := call(t, http.MethodGet, r.url+"/api/projects/1/presence", bobTok(t), "")
	if list, _ := out["users"].([]any); code != http.StatusOK || len(list) != events.DefaultPresencePage ||
		out["more"] != true || out["project_id"] != "1" || out["count"] != float64(events.DefaultPresencePage+1) {
		t.Errorf("GET without a limit: got %d, %d users, more %v, count %v; want 200, %d users, more, count %d",
			code, len(list), out["more"], out["count"], events.DefaultPresencePage, events.DefaultPresencePage+1)
	}
	code, out = call(t, http.MethodGet, q(r.url+"/api/projects/1/presence", "after", "1199"), bobTok(t), "")
	if list, _ := out["users"].([]any); code != http.StatusOK || len(list) != 1 || out["more"] != false {
		t.Errorf("GET after the last but one: got %d %v; want the last user alone, no more", code, out)
	}
	for _, bad := range [][]string{
		{"limit", "0"}, {"limit", fmt.Sprint(events.MaxPresencePage + 1)}, {"limit", "ten"}, {"limit", "-1"},
		{"after", "a_b"}, {"after", strings.Repeat("9", 65)},
	} {
		code, out := call(t, http.MethodGet, q(r.url+"/api/projects/1/presence", bad...), bobTok(t), "")
		if code != http.StatusBadRequest {
			t.Errorf("GET ?%s=%s: got %d %v, want 400", bad[0], bad[1], code, out)
			continue
		}
		checkErrorBody(t, out)
	}
	if code, _ := call(t, http.MethodGet, r.url+"/api/projects/1/presence", carolTok(t), ""); code != http.StatusForbidden {
		t.Errorf("GET by a non-member: got %d, want 403", code)
	}
}
