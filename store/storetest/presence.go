package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// NewPresence returns a fresh, empty presence, isolated from every other the
// suite makes; it cleans up in t.Cleanup.
type NewPresence func(t *testing.T) events.Presence

// presenceT0 is the suite's clock: every time is explicit, so nothing sleeps, and on
// a whole millisecond, so Redis's millisecond scores compare as Go's times do.
var presenceT0 = time.UnixMilli(1_700_000_000_000)

func presenceAt(d time.Duration) time.Time { return presenceT0.Add(d) }

// RunPresence runs the presence conformance suite against the presences
// newPresence makes. Subtests run in parallel, each on its own presence.
func RunPresence(t *testing.T, newPresence NewPresence) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, events.Presence)
	}{
		{"Join/FirstPerUser", testJoinFirst},
		{"Leave/LastPerUser", testLeaveLast},
		{"Refresh/Extends", testRefresh},
		{"Refresh/ReportsSweptHolds", testRefreshReportsSwept},
		{"Join/SetsViewingWhenGiven", testJoinViewing},
		{"Sweep/ExactlyOnceConcurrently", testSweepConcurrent},
		{"Sweep/LiveHoldKeepsUser", testSweepLiveHold},
		{"State/ViewingAndTyping", testViewingTyping},
		{"State/NotHeldIgnored", testStateNotHeld},
		{"Users/SortedScopedNamed", testUsersSorted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newPresence(t))
		})
	}
}

func presenceUser(id string) events.PresenceUser {
	return events.PresenceUser{UserID: id, Name: "name of " + id}
}

func ticketPtr(n int64) *int64 { return &n }

func mustJoin(t *testing.T, p events.Presence, project, userID, instance string, expires time.Time) bool {
	t.Helper()
	first, err := p.Join(context.Background(), project, presenceUser(userID), instance, expires)
	if err != nil {
		t.Fatalf("Join(%s, %s, %s): %v", project, userID, instance, err)
	}
	return first
}

func mustLeave(t *testing.T, p events.Presence, project, userID, instance string) bool {
	t.Helper()
	last, err := p.Leave(context.Background(), project, userID, instance)
	if err != nil {
		t.Fatalf("Leave(%s, %s, %s): %v", project, userID, instance, err)
	}
	return last
}

func mustRefresh(t *testing.T, p events.Presence, instance string, holds []events.PresenceHold, expires time.Time) []events.PresenceHold {
	t.Helper()
	missing, err := p.Refresh(context.Background(), instance, holds, expires)
	if err != nil {
		t.Fatalf("Refresh(%s, %v): %v", instance, holds, err)
	}
	return missing
}

func mustSweep(t *testing.T, p events.Presence, now time.Time) []events.Departure {
	t.Helper()
	deps, err := p.Sweep(context.Background(), now)
	if err != nil {
		t.Fatalf("Sweep(%v): %v", now, err)
	}
	return deps
}

func mustUsers(t *testing.T, p events.Presence, project string, now time.Time) []events.PresenceUser {
	t.Helper()
	users, err := p.Users(context.Background(), project, now)
	if err != nil {
		t.Fatalf("Users(%s): %v", project, err)
	}
	return users
}

// userIDs lists the ids of users, in order.
func userIDs(users []events.PresenceUser) []string {
	out := []string{}
	for _, u := range users {
		out = append(out, u.UserID)
	}
	return out
}

func wantUsers(t *testing.T, p events.Presence, project string, now time.Time, want ...string) []events.PresenceUser {
	t.Helper()
	users := mustUsers(t, p, project, now)
	if got := userIDs(users); !slices.Equal(got, append([]string{}, want...)) {
		t.Errorf("Users(%s) = %v, want %v", project, got, want)
	}
	return users
}

func testJoinFirst(t *testing.T, p events.Presence) {
	exp := presenceAt(time.Minute)
	for _, step := range []struct {
		project, user, instance string
		first                   bool
	}{
		{"1", "u1", "a", true},
		{"1", "u1", "a", false}, // the same instance again (a second tab)
		{"1", "u1", "b", false}, // another instance
		{"1", "u2", "a", true},
		{"2", "u1", "a", true}, // another project
	} {
		if got := mustJoin(t, p, step.project, step.user, step.instance, exp); got != step.first {
			t.Errorf("Join(%s, %s, %s) first = %v, want %v", step.project, step.user, step.instance, got, step.first)
		}
	}
	wantUsers(t, p, "1", presenceT0, "u1", "u2")
}

func testLeaveLast(t *testing.T, p events.Presence) {
	exp := presenceAt(time.Minute)
	mustJoin(t, p, "1", "u1", "a", exp)
	mustJoin(t, p, "1", "u1", "b", exp)
	mustJoin(t, p, "1", "u2", "a", exp)
	if err := p.SetViewing(context.Background(), "1", "u1", ticketPtr(5)); err != nil {
		t.Fatal(err)
	}
	if mustLeave(t, p, "1", "u1", "a") {
		t.Error("Leave(u1, a) last = true while b holds u1")
	}
	wantUsers(t, p, "1", presenceT0, "u1", "u2")
	if !mustLeave(t, p, "1", "u1", "b") {
		t.Error("Leave(u1, b) last = false, want true: no instance holds u1")
	}
	wantUsers(t, p, "1", presenceT0, "u2")
	if mustLeave(t, p, "1", "u1", "b") || mustLeave(t, p, "1", "nobody", "a") || mustLeave(t, p, "2", "u2", "a") {
		t.Error("Leave of a hold that is not there reported last = true")
	}
	// The state went with the last hold: a new join starts afresh.
	if !mustJoin(t, p, "1", "u1", "a", exp) {
		t.Error("Join after the last Leave: first = false, want true")
	}
	if u := mustUsers(t, p, "1", presenceT0)[0]; u.Viewing != nil {
		t.Errorf("after leave and join, viewing = %d, want nil (state removed on last leave)", *u.Viewing)
	}
}

func testRefresh(t *testing.T, p events.Presence) {
	ctx := context.Background()
	mustJoin(t, p, "1", "u1", "a", presenceAt(10*time.Second))
	mustJoin(t, p, "2", "u2", "a", presenceAt(10*time.Second))
	mustJoin(t, p, "1", "u3", "b", presenceAt(10*time.Second))
	holds := []events.PresenceHold{{Project: "1", UserID: "u1"}, {Project: "2", UserID: "u2"}, {Project: "1", UserID: "ghost"}}
	missing, err := p.Refresh(ctx, "a", holds, presenceAt(30*time.Second))
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if want := holds[2:]; !slices.Equal(missing, want) {
		t.Errorf("Refresh missing = %v, want %v (a never held it)", missing, want)
	}
	// The same expiry again changes no score: still nothing missing.
	if missing := mustRefresh(t, p, "a", holds[:2], presenceAt(30*time.Second)); len(missing) != 0 {
		t.Errorf("Refresh to the same expiry: missing = %v, want none", missing)
	}
	if missing, err := p.Refresh(ctx, "a", nil, presenceAt(30*time.Second)); err != nil || missing != nil {
		t.Fatalf("Refresh(no holds) = %v, %v; want nil, nil", missing, err)
	}
	if deps := mustSweep(t, p, presenceAt(10*time.Second)); len(deps) != 0 {
		t.Errorf("Sweep at the expiry itself = %v, want none (only holds that expired before now)", deps)
	}
	deps := mustSweep(t, p, presenceAt(20*time.Second))
	if want := []events.Departure{{Project: "1", UserID: "u3", Name: "name of u3"}}; !slices.Equal(deps, want) {
		t.Errorf("Sweep between the old and new expiry = %v, want only the unrefreshed %v", deps, want)
	}
	wantUsers(t, p, "1", presenceT0, "u1") // the refresh of a hold that was not there made none
	deps = mustSweep(t, p, presenceAt(31*time.Second))
	if len(deps) != 2 {
		t.Errorf("Sweep after the new expiry = %v, want u1 and u2", deps)
	}
}

// testRefreshReportsSwept: instance a could not refresh for longer than its
// holds last (Redis was down) and another process swept them: a's next
// Refresh reports exactly the holds it lost, in the order given, and joining
// them again brings the users back, named and viewing as a says.
func testRefreshReportsSwept(t *testing.T, p events.Presence) {
	ctx := context.Background()
	short, long := presenceAt(10*time.Second), presenceAt(time.Hour)
	mustJoin(t, p, "1", "alone", "a", short)  // only a holds her
	mustJoin(t, p, "1", "shared", "a", short) // b holds him too, and stays
	mustJoin(t, p, "1", "shared", "b", long)
	mustJoin(t, p, "2", "fresh", "a", long) // refreshed in time: stays
	if err := p.SetViewing(ctx, "1", "alone", ticketPtr(5)); err != nil {
		t.Fatal(err)
	}
	deps := mustSweep(t, p, presenceAt(20*time.Second)) // by another process
	if want := []events.Departure{{Project: "1", UserID: "alone", Name: "name of alone"}}; !slices.Equal(deps, want) {
		t.Fatalf("Sweep = %v, want %v", deps, want)
	}
	holds := []events.PresenceHold{{Project: "2", UserID: "fresh"}, {Project: "1", UserID: "shared"}, {Project: "1", UserID: "alone"}}
	missing := mustRefresh(t, p, "a", holds, presenceAt(40*time.Second))
	if want := holds[1:]; !slices.Equal(missing, want) {
		t.Fatalf("Refresh after the sweep: missing = %v, want %v", missing, want)
	}
	wantUsers(t, p, "1", presenceT0, "shared") // Refresh made nothing again

	user := presenceUser("alone")
	user.Viewing = ticketPtr(5)
	if first, err := p.Join(ctx, "1", user, "a", presenceAt(40*time.Second)); err != nil || !first {
		t.Errorf("Join(alone) again = %v, %v; want first: nobody held her", first, err)
	}
	if mustJoin(t, p, "1", "shared", "a", presenceAt(40*time.Second)) {
		t.Error("Join(shared) again: first = true, want false: b holds him")
	}
	users := wantUsers(t, p, "1", presenceT0, "alone", "shared")
	if len(users) == 2 && (users[0].Name != "name of alone" || !sameTicket(users[0].Viewing, ticketPtr(5))) {
		t.Errorf("alone after joining again: name %q viewing %v, want %q viewing 5", users[0].Name, showTicket(users[0].Viewing), "name of alone")
	}
	if missing := mustRefresh(t, p, "a", holds, presenceAt(50*time.Second)); len(missing) != 0 {
		t.Errorf("Refresh after joining again: missing = %v, want none", missing)
	}
	// The joined-again holds are a's like any other: they last as refreshed.
	if deps := mustSweep(t, p, presenceAt(45*time.Second)); len(deps) != 0 {
		t.Errorf("Sweep before the refreshed expiry = %v, want none", deps)
	}
}

// testJoinViewing: Join sets the viewing it is given and keeps the one it is
// not (a second tab's join knows nothing of the first's view).
func testJoinViewing(t *testing.T, p events.Presence) {
	ctx := context.Background()
	user := presenceUser("u1")
	user.Viewing = ticketPtr(1<<62 + 3)
	if _, err := p.Join(ctx, "1", user, "a", presenceAt(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, p, "1", "u1", "b", presenceAt(time.Minute)) // no viewing given
	if u := mustUsers(t, p, "1", presenceT0); len(u) != 1 || !sameTicket(u[0].Viewing, user.Viewing) {
		t.Errorf("Users = %+v, want u1 viewing %d", u, *user.Viewing)
	}
}

// testSweepConcurrent: four sweeps at once, as from four processes, over more
// expired holds than one batch; every departure is reported exactly once.
func testSweepConcurrent(t *testing.T, p events.Presence) {
	const users = 700
	want := make(map[events.Departure]bool)
	for i := range users {
		project, id := fmt.Sprint(i%3), fmt.Sprintf("u%d", i)
		mustJoin(t, p, project, id, "dead", presenceAt(time.Second))
		if i%2 == 0 {
			mustJoin(t, p, project, id, "dead2", presenceAt(2*time.Second))
		}
		want[events.Departure{Project: project, UserID: id, Name: "name of " + id}] = true
	}
	mustJoin(t, p, "0", "alive", "live", presenceAt(time.Hour))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = make(map[events.Departure]int)
	)
	for range 4 {
		wg.Go(func() {
			deps, err := p.Sweep(context.Background(), presenceAt(3*time.Second))
			if err != nil {
				t.Errorf("Sweep: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range deps {
				seen[d]++
			}
		})
	}
	wg.Wait()
	for d, n := range seen {
		if n != 1 || !want[d] {
			t.Errorf("departure %v reported %d times (wanted: %v), want once for each expired user", d, n, want[d])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d departures reported, want %d", len(seen), len(want))
	}
	if deps := mustSweep(t, p, presenceAt(3*time.Second)); len(deps) != 0 {
		t.Errorf("second Sweep = %d departures, want none", len(deps))
	}
	wantUsers(t, p, "0", presenceT0, "alive")
}

// testSweepLiveHold: a user held by a dead instance and a live one stays.
func testSweepLiveHold(t *testing.T, p events.Presence) {
	mustJoin(t, p, "1", "u1", "dead", presenceAt(time.Second))
	mustJoin(t, p, "1", "u1", "live", presenceAt(time.Minute))
	if deps := mustSweep(t, p, presenceAt(2*time.Second)); len(deps) != 0 {
		t.Errorf("Sweep = %v, want none: a live instance holds u1", deps)
	}
	wantUsers(t, p, "1", presenceT0, "u1")
	if mustLeave(t, p, "1", "u1", "dead") {
		t.Error("Leave of a swept hold reported last = true")
	}
	if !mustLeave(t, p, "1", "u1", "live") {
		t.Error("Leave of the live hold: last = false, want true")
	}
}

func testViewingTyping(t *testing.T, p events.Presence) {
	ctx := context.Background()
	mustJoin(t, p, "1", "u1", "a", presenceAt(time.Minute))
	big := int64(1<<62 + 1) // beyond float precision: must survive exactly
	if err := p.SetViewing(ctx, "1", "u1", ticketPtr(big)); err != nil {
		t.Fatal(err)
	}
	if err := p.SetTyping(ctx, "1", "u1", ticketPtr(7), presenceAt(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	check := func(what string, now time.Time, viewing, typing *int64) {
		t.Helper()
		u := mustUsers(t, p, "1", now)
		if len(u) != 1 {
			t.Fatalf("%s: Users = %v, want u1", what, userIDs(u))
		}
		if !sameTicket(u[0].Viewing, viewing) || !sameTicket(u[0].Typing, typing) || u[0].Name != "name of u1" {
			t.Errorf("%s: got %s viewing %v typing %v, want name of u1 viewing %v typing %v",
				what, u[0].Name, showTicket(u[0].Viewing), showTicket(u[0].Typing), showTicket(viewing), showTicket(typing))
		}
		if typing != nil && !u[0].TypingUntil.Equal(presenceAt(5*time.Second)) {
			t.Errorf("%s: typing until %v, want %v", what, u[0].TypingUntil, presenceAt(5*time.Second))
		}
	}
	check("typing", presenceT0, ticketPtr(big), ticketPtr(7))
	check("typing at its end", presenceAt(5*time.Second), ticketPtr(big), ticketPtr(7))
	check("typing ended", presenceAt(6*time.Second), ticketPtr(big), nil)
	if err := p.SetViewing(ctx, "1", "u1", nil); err != nil {
		t.Fatal(err)
	}
	check("viewing cleared", presenceT0, nil, ticketPtr(7))
	if err := p.SetTyping(ctx, "1", "u1", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	check("typing cleared", presenceT0, nil, nil)
	mustJoin(t, p, "1", "u1", "b", presenceAt(time.Minute)) // a second tab keeps the state
	if err := p.SetViewing(ctx, "1", "u1", ticketPtr(3)); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, p, "1", "u1", "c", presenceAt(time.Minute))
	check("after another join", presenceT0, ticketPtr(3), nil)
}

func testStateNotHeld(t *testing.T, p events.Presence) {
	ctx := context.Background()
	if err := p.SetViewing(ctx, "1", "nobody", ticketPtr(1)); err != nil {
		t.Errorf("SetViewing(user not held) = %v, want nil", err)
	}
	if err := p.SetTyping(ctx, "1", "nobody", ticketPtr(1), presenceAt(time.Minute)); err != nil {
		t.Errorf("SetTyping(user not held) = %v, want nil", err)
	}
	wantUsers(t, p, "1", presenceT0)
	if !mustJoin(t, p, "1", "nobody", "a", presenceAt(time.Minute)) {
		t.Error("Join after SetViewing of a user not held: first = false, want true")
	}
	if u := mustUsers(t, p, "1", presenceT0)[0]; u.Viewing != nil || u.Typing != nil {
		t.Errorf("state set while not held was kept: viewing %v typing %v", showTicket(u.Viewing), showTicket(u.Typing))
	}
}

func testUsersSorted(t *testing.T, p events.Presence) {
	for _, id := range []string{"b", "c", "a", "B"} {
		mustJoin(t, p, "1", id, "i", presenceAt(time.Minute))
	}
	mustJoin(t, p, "2", "z", "i", presenceAt(time.Minute))
	mustJoin(t, p, "11", "y", "i", presenceAt(time.Minute)) // a project id prefixed by another
	users := wantUsers(t, p, "1", presenceT0, "B", "a", "b", "c")
	for _, u := range users {
		if u.Name != "name of "+u.UserID {
			t.Errorf("user %s named %q, want %q", u.UserID, u.Name, "name of "+u.UserID)
		}
	}
	wantUsers(t, p, "2", presenceT0, "z")
	wantUsers(t, p, "3", presenceT0)
	// Join sets the name: a later join's name wins.
	if _, err := p.Join(context.Background(), "2", events.PresenceUser{UserID: "z", Name: "Zoë"}, "j", presenceAt(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := mustUsers(t, p, "2", presenceT0)[0].Name; got != "Zoë" {
		t.Errorf("name after a join with a new name = %q, want %q", got, "Zoë")
	}
}

func sameTicket(a, b *int64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func showTicket(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
