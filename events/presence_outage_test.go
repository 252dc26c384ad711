package events_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// loopTick is how often the tracker's loop wakes (events.tick): a heartbeat
// is due every HoldTTL/3 and runs on the first tick after.
const loopTick = 500 * time.Millisecond

var errStoreDown = errors.New("presence store down (test)")

// outageStore is a memory presence that can be out of reach (every call
// fails while down) and can lose everything (Lose: Redis restarted empty).
// Several trackers may share one, as processes share a Redis.
type outageStore struct {
	down atomic.Bool
	cur  atomic.Pointer[store.MemoryPresence]
}

func newOutageStore() *outageStore {
	s := &outageStore{}
	s.cur.Store(store.NewMemoryPresence())
	return s
}

// Lose forgets every hold and every user's state.
func (s *outageStore) Lose() { s.cur.Store(store.NewMemoryPresence()) }

func (s *outageStore) get() (events.Presence, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.cur.Load(), nil
}

func (s *outageStore) Join(ctx context.Context, project string, user events.PresenceUser, instance string, expires time.Time) (bool, error) {
	p, err := s.get()
	if err != nil {
		return false, err
	}
	return p.Join(ctx, project, user, instance, expires)
}

func (s *outageStore) Leave(ctx context.Context, project, userID, instance string) (bool, error) {
	p, err := s.get()
	if err != nil {
		return false, err
	}
	return p.Leave(ctx, project, userID, instance)
}

func (s *outageStore) Refresh(ctx context.Context, instance string, holds []events.PresenceHold, expires time.Time) ([]events.PresenceHold, error) {
	p, err := s.get()
	if err != nil {
		return nil, err
	}
	return p.Refresh(ctx, instance, holds, expires)
}

func (s *outageStore) Sweep(ctx context.Context, now time.Time) ([]events.Departure, error) {
	p, err := s.get()
	if err != nil {
		return nil, err
	}
	return p.Sweep(ctx, now)
}

func (s *outageStore) SetViewing(ctx context.Context, project, userID string, ticket *int64) error {
	p, err := s.get()
	if err != nil {
		return err
	}
	return p.SetViewing(ctx, project, userID, ticket)
}

func (s *outageStore) SetTyping(ctx context.Context, project, userID string, ticket *int64, until time.Time) error {
	p, err := s.get()
	if err != nil {
		return err
	}
	return p.SetTyping(ctx, project, userID, ticket, until)
}

func (s *outageStore) Users(ctx context.Context, project string, now time.Time) ([]events.PresenceUser, error) {
	p, err := s.get()
	if err != nil {
		return nil, err
	}
	return p.Users(ctx, project, now)
}

func (w *presenceWorld) trackerOn(t *testing.T, p events.Presence) *events.Tracker {
	t.Helper()
	tr := events.NewTracker(w.hub, p, w.cfg, nil)
	tr.Start()
	t.Cleanup(tr.Close)
	return tr
}

func mustConnect(t *testing.T, tr *events.Tracker, project, userID, name string) {
	t.Helper()
	release, err := tr.Connect(context.Background(), project, userID, name)
	if err != nil {
		t.Fatalf("Connect(%s, %s): %v", project, userID, err)
	}
	t.Cleanup(release)
}

// wantOnline checks who the store lists in project 1, with alice (7)
// viewing 42 when she is listed.
func wantOnline(t *testing.T, tr *events.Tracker, want ...string) {
	t.Helper()
	users, err := tr.Users(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.UserID+" "+u.Name)
		if u.UserID == "7" && (u.Viewing == nil || *u.Viewing != 42) {
			t.Errorf("alice is listed viewing %v, want 42", u.Viewing)
		}
	}
	expectList(t, "users", got, want...)
}

func expectList(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
}

// TestPresenceSweptUserJoinsAgain: process a cannot reach the store for
// longer than its holds last, while b can and sweeps a's user as left. Within
// one heartbeat of the store answering a again, a joins her again: she is
// announced joined and listed, with her name and the ticket she views.
func TestPresenceSweptUserJoinsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		st := newOutageStore()
		a := w.trackerOn(t, st)
		b := w.trackerOn(t, st.cur.Load()) // b reaches the store throughout
		mustConnect(t, a, "1", "7", "alice")
		mustConnect(t, b, "1", "8", "bob")
		ticket := int64(42)
		if err := a.Viewing(context.Background(), "1", "7", "alice", &ticket); err != nil {
			t.Fatal(err)
		}
		expect(t, w.seen(t), "user_status joined 7", "user_status joined 8", "viewing  7")

		st.down.Store(true)
		// Past b's sweep after a's hold expired; off the loops' ticks, so the
		// store comes back between two of them, never at one.
		time.Sleep(w.cfg.HoldTTL + w.cfg.HoldTTL/3 + time.Second + loopTick/2)
		expect(t, w.seen(t), "user_status left 7")
		wantOnline(t, b, "8 bob")

		st.down.Store(false)
		time.Sleep(w.cfg.HoldTTL/3 + loopTick) // one heartbeat
		expect(t, w.seen(t), "user_status joined 7")
		wantOnline(t, b, "7 alice", "8 bob")
	})
}

// TestPresenceStoreLostEverything: the store comes back empty (Redis
// restarted without persistence). Within one heartbeat every connected user
// of both processes is listed again and announced joined (the store no
// longer knew them), once each, the user connected to both included.
func TestPresenceStoreLostEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		st := newOutageStore()
		a, b := w.trackerOn(t, st), w.trackerOn(t, st)
		mustConnect(t, a, "1", "7", "alice")
		mustConnect(t, b, "1", "8", "bob")
		mustConnect(t, a, "1", "9", "carol")
		mustConnect(t, b, "1", "9", "carol")
		ticket := int64(42)
		if err := a.Viewing(context.Background(), "1", "7", "alice", &ticket); err != nil {
			t.Fatal(err)
		}
		expect(t, w.seen(t), "user_status joined 7", "user_status joined 8", "user_status joined 9", "viewing  7")

		st.Lose()
		wantOnline(t, a)
		time.Sleep(w.cfg.HoldTTL/3 + loopTick) // one heartbeat
		got := w.seen(t)
		slices.Sort(got) // a's and b's heartbeats run at the same instant
		expectList(t, "announcements", got, "user_status joined 7", "user_status joined 8", "user_status joined 9")
		wantOnline(t, a, "7 alice", "8 bob", "9 carol")
	})
}

// TestPresenceOutageForEveryoneAnnouncesNoLeft: the store is out of reach
// for both processes for longer than the holds last. When it answers again,
// whichever process beats first waits a heartbeat before it sweeps, so the
// other refreshes its expired holds first: nobody is announced left.
func TestPresenceOutageForEveryoneAnnouncesNoLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newPresenceWorld(t)
		st := newOutageStore()
		a := w.trackerOn(t, st)
		mustConnect(t, a, "1", "7", "alice")
		time.Sleep(w.cfg.HoldTTL / 6) // b beats half a heartbeat after a
		b := w.trackerOn(t, st)
		mustConnect(t, b, "1", "8", "bob")
		ticket := int64(42)
		if err := a.Viewing(context.Background(), "1", "7", "alice", &ticket); err != nil {
			t.Fatal(err)
		}
		expect(t, w.seen(t), "user_status joined 7", "user_status joined 8", "viewing  7")

		st.down.Store(true)
		time.Sleep(w.cfg.HoldTTL + w.cfg.HoldTTL/3 + loopTick/2) // off the loops' ticks
		st.down.Store(false)
		time.Sleep(w.cfg.HoldTTL) // three heartbeats each, sweeps included
		expect(t, w.seen(t))
		wantOnline(t, a, "7 alice", "8 bob")
	})
}
