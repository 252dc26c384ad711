package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// presenceWorld is a hub over a memory log with a shared presence store, in
// a synctest bubble: timers run on the bubble's fake clock.
type presenceWorld struct {
	hub   *events.Hub
	store events.Presence
	sub   *events.Subscription
	cfg   events.PresenceConfig
}

func newPresenceWorld(t *testing.T) *presenceWorld {
	t.Helper()
	mem := store.NewMemory(events.Retention{})
	hub := events.NewHub(mem, events.HubOptions{})
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub, err := hub.Subscribe(context.Background(), []string{"project_1_presence"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close(); hub.Close(); mem.Close() })
	if err := sub.Replay(context.Background(), discard{}); err != nil {
		t.Fatal(err)
	}
	cfg := events.PresenceConfig{Grace: 5 * time.Second, TypingTimeout: 6 * time.Second, HoldTTL: 30 * time.Second}
	return &presenceWorld{hub: hub, store: store.NewMemoryPresence(), sub: sub, cfg: cfg}
}

func (w *presenceWorld) tracker(t *testing.T) *events.Tracker {
	t.Helper()
	tr := events.NewTracker(w.hub, w.store, w.cfg, nil)
	tr.Start()
	t.Cleanup(tr.Close)
	return tr
}

type discard struct{}

func (discard) Event(*events.Event) error { return nil }
func (discard) Reset(string) error        { return nil }

// seen returns the events delivered so far, as "type action/is_typing user".
func (w *presenceWorld) seen(t *testing.T) []string {
	t.Helper()
	synctest.Wait()
	var out []string
	for _, ev := range w.sub.Take(nil) {
		var m struct {
			Action   string `json:"action"`
			UserID   string `json:"user_id"`
			IsTyping *bool  `json:"is_typing"`
		}
		_ = json.Unmarshal(ev.JSON(), &m)
		s := ev.Type + " " + m.Action + " " + m.UserID
		if m.IsTyping != nil {
			s = ev.Type + " " + map[bool]string{true: "on", false: "off"}[*m.IsTyping] + " " + m.UserID
		}
		out = append(out, s)
	}
	return out
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events: got %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("events: got %q, want %q", got, want)
		}
	}
}

func TestPresencePerUserNotPerTab(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		tr := w.tracker(t)
		ctx := context.Background()
		tab1, err := tr.Connect(ctx, "1", "7", "alice")
		if err != nil {
			t.Fatal(err)
		}
		tab2, _ := tr.Connect(ctx, "1", "7", "alice")
		expect(t, w.seen(t), "user_status joined 7")

		tab1()
		time.Sleep(w.cfg.Grace * 2)
		expect(t, w.seen(t)) // one tab still open: no leave

		tab2()
		time.Sleep(w.cfg.Grace - time.Second)
		expect(t, w.seen(t)) // within the grace period
		time.Sleep(2 * time.Second)
		expect(t, w.seen(t), "user_status left 7")
		if users, _ := tr.Users(ctx, "1"); len(users) != 0 {
			t.Errorf("users after leave: got %v, want none", users)
		}
	})
}

func TestPresenceReloadDoesNotFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		tr := w.tracker(t)
		ctx := context.Background()
		release, _ := tr.Connect(ctx, "1", "7", "alice")
		expect(t, w.seen(t), "user_status joined 7")
		release()
		time.Sleep(w.cfg.Grace / 2) // the page reloads
		release, _ = tr.Connect(ctx, "1", "7", "alice")
		time.Sleep(w.cfg.Grace * 3)
		expect(t, w.seen(t))
		release()
		time.Sleep(w.cfg.Grace + time.Second)
		expect(t, w.seen(t), "user_status left 7")
	})
}

func TestTypingEndsByItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		tr := w.tracker(t)
		ctx := context.Background()
		release, _ := tr.Connect(ctx, "1", "7", "alice")
		defer release()
		w.seen(t)
		if err := tr.Typing(ctx, "1", "7", "alice", 5, true); err != nil {
			t.Fatal(err)
		}
		expect(t, w.seen(t), "typing on 7")
		users, _ := tr.Users(ctx, "1")
		if len(users) != 1 || users[0].Typing == nil || *users[0].Typing != 5 {
			t.Fatalf("users while typing: got %+v, want alice typing in 5", users)
		}
		time.Sleep(w.cfg.TypingTimeout - time.Second)
		if err := tr.Typing(ctx, "1", "7", "alice", 5, true); err != nil { // a refresh
			t.Fatal(err)
		}
		time.Sleep(w.cfg.TypingTimeout - time.Second)
		expect(t, w.seen(t), "typing on 7")
		time.Sleep(2 * time.Second)
		expect(t, w.seen(t), "typing off 7")
		users, _ = tr.Users(ctx, "1")
		if users[0].Typing != nil {
			t.Errorf("typing after timeout: got %d, want none", *users[0].Typing)
		}
	})
}

func TestViewingShowsInState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		tr := w.tracker(t)
		ctx := context.Background()
		release, _ := tr.Connect(ctx, "1", "7", "alice")
		defer release()
		ticket := int64(42)
		if err := tr.Viewing(ctx, "1", "7", "alice", &ticket); err != nil {
			t.Fatal(err)
		}
		expect(t, w.seen(t), "user_status joined 7", "viewing  7")
		st, err := tr.State(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		var state struct {
			Type  string                `json:"type"`
			Users []events.PresenceUser `json:"users"`
		}
		if err := json.Unmarshal(st.JSON(), &state); err != nil {
			t.Fatal(err)
		}
		if state.Type != "presence_state" || len(state.Users) != 1 || state.Users[0].Name != "alice" ||
			state.Users[0].Viewing == nil || *state.Users[0].Viewing != 42 {
			t.Errorf("presence_state: got %s", st.JSON())
		}
		if !st.Ephemeral {
			t.Error("presence_state is stored; want it ephemeral")
		}
	})
}

func TestDeadProcessUsersLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		dead := events.NewTracker(w.hub, w.store, w.cfg, nil)
		dead.Start()
		alive := w.tracker(t)
		ctx := context.Background()
		if _, err := dead.Connect(ctx, "1", "7", "alice"); err != nil {
			t.Fatal(err)
		}
		keep, _ := alive.Connect(ctx, "1", "8", "bob")
		defer keep()
		expect(t, w.seen(t), "user_status joined 7", "user_status joined 8")
		dead.Close() // as kill -9: no leave, no more heartbeats
		time.Sleep(w.cfg.HoldTTL)
		expect(t, w.seen(t))
		time.Sleep(w.cfg.HoldTTL / 2)
		expect(t, w.seen(t), "user_status left 7")
	})
}

// stateOf decodes a presence_state message.
func stateOf(t *testing.T, st *events.Event) (users []events.PresenceUser, count int, more bool) {
	t.Helper()
	var m struct {
		Type  string                `json:"type"`
		Users []events.PresenceUser `json:"users"`
		Count *int                  `json:"count"`
		More  *bool                 `json:"more"`
	}
	if err := json.Unmarshal(st.JSON(), &m); err != nil {
		t.Fatalf("presence_state %.200s: %v", st.JSON(), err)
	}
	if m.Type != "presence_state" || m.Users == nil || m.Count == nil || m.More == nil {
		t.Fatalf("presence_state: got %.300s, want type, users, count and more", st.JSON())
	}
	return m.Users, *m.Count, *m.More
}

// TestPresenceStateBounded: presence_state lists at most
// PresenceStateMaxUsers users, the first by user id, with count and more.
func TestPresenceStateBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		online int
		listed int
		more   bool
	}{
		{"empty", 0, 0, false},
		{"one", 1, 1, false},
		{"exactly the bound", events.PresenceStateMaxUsers, events.PresenceStateMaxUsers, false},
		{"one over", events.PresenceStateMaxUsers + 1, events.PresenceStateMaxUsers, true},
		{"many", 1000, events.PresenceStateMaxUsers, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tr := newPresenceWorld(t).tracker(t)
				ctx := context.Background()
				for i := range tc.online {
					release, err := tr.Connect(ctx, "1", fmt.Sprint(1000+i), "user")
					if err != nil {
						t.Fatal(err)
					}
					defer release()
				}
				st, err := tr.State(ctx, "1")
				if err != nil {
					t.Fatal(err)
				}
				users, count, more := stateOf(t, st)
				if len(users) != tc.listed || count != tc.online || more != tc.more {
					t.Errorf("got %d users, count %d, more %v; want %d, %d, %v", len(users), count, more, tc.listed, tc.online, tc.more)
				}
				for i, u := range users {
					if want := fmt.Sprint(1000 + i); u.UserID != want {
						t.Fatalf("users[%d]: got %s, want %s (the first by user id)", i, u.UserID, want)
					}
				}
			})
		})
	}
}

// TestPresenceOverPublishLimit: relay's own presence messages are not bound
// by the publishers' payload limit: a user whose name alone is over it joins,
// types and views, and is announced; presence_state stays within its byte
// bound and says more, and Page lists the user.
func TestPresenceOverPublishLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		tr := w.tracker(t)
		ctx := context.Background()
		huge := strings.Repeat("h", events.DefaultMaxPayload+1)
		small, err := tr.Connect(ctx, "1", "2", "bob")
		if err != nil {
			t.Fatal(err)
		}
		defer small()
		release, err := tr.Connect(ctx, "1", "1", huge)
		if err != nil {
			t.Fatalf("connect with a %d-byte name: %v", len(huge), err)
		}
		defer release()
		if err := tr.Typing(ctx, "1", "1", huge, 5, true); err != nil {
			t.Errorf("typing: %v", err)
		}
		ticket := int64(5)
		if err := tr.Viewing(ctx, "1", "1", huge, &ticket); err != nil {
			t.Errorf("viewing: %v", err)
		}
		expect(t, w.seen(t), "user_status joined 2", "user_status joined 1", "typing on 1", "viewing  1")

		st, err := tr.State(ctx, "1")
		if err != nil {
			t.Fatal(err)
		}
		users, count, more := stateOf(t, st)
		if len(users) != 0 || count != 2 || !more {
			t.Errorf("presence_state: got %d users, count %d, more %v; want 0 (user 1 alone is over %d bytes), 2, true",
				len(users), count, more, events.PresenceStateMaxBytes)
		}
		page, err := tr.Page(ctx, "1", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Users) != 2 || page.Users[0].Name != huge || page.Users[1].Name != "bob" || page.More {
			t.Errorf("page: got %d users, more %v; want users 1 and 2, no more", len(page.Users), page.More)
		}
	})
}

// TestPresencePage: pages follow user id order (as bytes) after the given
// id, whether or not that id is online, within the limit.
func TestPresencePage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newPresenceWorld(t).tracker(t)
		ctx := context.Background()
		for _, id := range []string{"1", "10", "2", "b", "a"} {
			release, err := tr.Connect(ctx, "1", id, "u"+id)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
		}
		for _, tc := range []struct {
			after string
			limit int
			want  string
			more  bool
		}{
			{"", 0, "1 10 2 a b", false},
			{"", 2, "1 10", true},
			{"10", 2, "2 a", true},
			{"a", 2, "b", false},
			{"b", 2, "", false},
			{"11", 2, "2 a", true}, // not online: the next after it
			{"0", 5, "1 10 2 a b", false},
			{"", events.MaxPresencePage + 1, "1 10 2 a b", false},
		} {
			page, err := tr.Page(ctx, "1", tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range page.Users {
				got = append(got, u.UserID)
			}
			if strings.Join(got, " ") != tc.want || page.More != tc.more || page.Count != 5 || page.Users == nil {
				t.Errorf("after %q limit %d: got %v more %v count %d; want [%s] more %v count 5",
					tc.after, tc.limit, got, page.More, page.Count, tc.want, tc.more)
			}
		}
	})
}

// TestTrackerCloseWithoutStart: a tracker that was never started (a process
// that failed to start, a test that needs none) closes at once; Start after
// Close runs nothing, and Start twice runs one loop.
func TestTrackerCloseWithoutStart(t *testing.T) {
	mem := store.NewMemory(events.Retention{})
	defer mem.Close()
	hub := events.NewHub(mem, events.HubOptions{})
	closed := func(tr *events.Tracker) bool {
		done := make(chan struct{})
		go func() { tr.Close(); close(done) }()
		select {
		case <-done:
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}

	never := events.NewTracker(hub, store.NewMemoryPresence(), events.PresenceConfig{}, nil)
	if !closed(never) {
		t.Fatal("Close of a tracker never started: still waiting after 5 s")
	}
	never.Start() // after Close: no loop (goleak would see it)
	if !closed(never) {
		t.Fatal("second Close: still waiting after 5 s")
	}

	twice := events.NewTracker(hub, store.NewMemoryPresence(), events.PresenceConfig{}, nil)
	twice.Start()
	twice.Start()
	if !closed(twice) {
		t.Fatal("Close of a tracker started twice: still waiting after 5 s")
	}
}
