package events_test

import (
	"context"
	"encoding/json"
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
	hub := events.NewHub(mem, nil)
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
	for {
		select {
		case ev := <-w.sub.Live():
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
		default:
			return out
		}
	}
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
