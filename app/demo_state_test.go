package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoLateJoinerSeesTheState: the demo takes its state from relay's
// history (subscribe with cursor "0") and then follows live, so a page
// opened after tickets changed shows what the pages already open show.
func TestDemoLateJoinerSeesTheState(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(nil))
	early, _ := tab(t, b)
	openDemo(t, early, r.url, "user=alice&share=0")

	status := func(ticket int, status string) map[string]any {
		return map[string]any{"channel": "project_1_tickets", "type": "ticket_update",
			"data": map[string]any{"ticket_id": ticket, "title": "Export to CSV drops the last row", "status": status, "updated_by": "alice"}}
	}
	comment := map[string]any{"channel": "project_1_tickets", "type": "comment_added", "data": map[string]any{"ticket_id": 102, "author": "alice", "text": "fixed in 1.2"}}
	before := publishAll(t, r.url, status(102, "in progress"), status(102, "done"), comment)
	chip := `document.querySelector('[data-ticket="102"] .chip').textContent`
	waitFor(t, early, "the open page to show #102 done", chip+` === "done"`, 5*time.Second)

	late, _ := tab(t, b)
	openDemo(t, late, r.url, "user=bob&share=0")
	waitFor(t, late, "the late joiner to show #102 done", chip+` === "done"`, 5*time.Second)
	sameIDs(t, "the late joiner's replay", receivedIDs(t, late), before)
	if got := eval[int](t, late, `document.querySelectorAll('[data-ticket="102"]').length`); got != 1 {
		t.Fatalf("ticket 102 is listed %d times", got)
	}
	if got := eval[string](t, late, `document.querySelector("#log").textContent`); !strings.Contains(got, "loading the tickets' state from relay's history") {
		t.Errorf("the late joiner's log does not say it loaded the state: %q", got)
	}

	// Then live, on both pages, each event once.
	after := publishAll(t, r.url, status(102, "review"))
	for name, page := range map[string]context.Context{"alice": early, "bob": late} {
		waitFor(t, page, name+"'s page to show #102 in review", chip+` === "review"`, 5*time.Second)
		sameIDs(t, name+"'s events", receivedIDs(t, page), append(before, after...))
	}
	if got := eval[int](t, late, `demo.relay.stats.duplicates`); got != 0 {
		t.Errorf("the late joiner dropped %d duplicates, want none sent", got)
	}
}
