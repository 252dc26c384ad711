package main

// Browser tests: the demo page and relay.js in a real headless Chromium,
// against relay started through run. They need /usr/bin/chromium (`task deps`
// installs it) and are skipped only with -short.

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/store/redistest"
)

func TestBrowserEventsOverSSE(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(nil))
	ctx, _ := tab(t, b)
	openDemo(t, ctx, r.url, "user=alice&share=0")
	if got := eval[string](t, ctx, `demo.relay.state.transport`); got != "sse" {
		t.Fatalf("got transport %q, want sse first", got)
	}
	ids := publishAll(t, r.url, ticketEvents(1, 5)...)
	waitFor(t, ctx, "5 events", `demo.received.length >= 5`, 5*time.Second)
	sameIDs(t, "over SSE", receivedIDs(t, ctx), ids)
	if got := eval[string](t, ctx, `document.getElementById("conn-text").textContent`); !strings.Contains(got, "SSE") {
		t.Errorf("connection state shows %q, want it to say live over SSE", got)
	}

	// The page's own publish button (with its demo token) reaches it too.
	do(t, ctx, chromedp.Click(chromedp.CSS(`[data-act="update"]`)))
	waitFor(t, ctx, "the page's own ticket_update", `demo.received.length === 6 && demo.received[5].type === "ticket_update"`, 5*time.Second)
	waitFor(t, ctx, "the activity log to show it", `document.querySelector("#log").textContent.includes("updated by alice")`, 2*time.Second)
}

func TestBrowserWebSocketFallback(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(t *testing.T, ctx context.Context)
		connects int // SSE attempts + the WebSocket one
	}{
		{"no EventSource", func(t *testing.T, ctx context.Context) { beforeLoad(t, ctx, `delete window.EventSource;`) }, 1},
		{"EventSource requests fail", blockEventSource, 3}, // sseFailuresBeforeWebSocket: 2
	}
	b := browser(t)
	r := start(t, devEnv(nil))
	var all []string // the demo replays the tickets' history on sign-in: earlier cases' events come first
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, _ := tab(t, b)
			c.setup(t, ctx)
			openDemo(t, ctx, r.url, "user=bob&share=0&backoff=50,200")
			if got := eval[string](t, ctx, `demo.relay.state.transport`); got != "websocket" {
				t.Fatalf("got transport %q, want websocket", got)
			}
			if got := eval[int](t, ctx, `demo.relay.stats.connects`); got != c.connects {
				t.Errorf("got %d connection attempts, want %d", got, c.connects)
			}
			all = append(all, publishAll(t, r.url, ticketEvents(0, 4)...)...)
			waitFor(t, ctx, "4 events", `demo.received.length >= `+strconv.Itoa(len(all)), 5*time.Second)
			sameIDs(t, "over WebSocket", receivedIDs(t, ctx), all)
			if rtt := eval[int](t, ctx, `demo.relay.ping()`); rtt < 0 || rtt > 5000 {
				t.Errorf("ping over WebSocket: got %d ms", rtt)
			}
		})
	}
}

// TestBrowserResumeAfterRestart stops the page's relay while a second relay
// sharing the Redis log keeps publishing, then starts it again on the same
// port: the page must catch up with exactly what it missed.
func TestBrowserResumeAfterRestart(t *testing.T) {
	b := browser(t)
	redisURL, prefix := redistest.URL(t), redistest.Prefix(t) // Prefix is new on each call
	env := func(addr string) map[string]string {
		return devEnv(map[string]string{"REDIS_URL": redisURL, "RELAY_REDIS_PREFIX": prefix, "RELAY_ADDR": addr})
	}
	a := start(t, env("127.0.0.1:0"))
	publisher := start(t, env("127.0.0.1:0"))
	ctx, _ := tab(t, b)
	openDemo(t, ctx, a.url, "user=alice&share=0&backoff=100,1000")

	want := publishAll(t, publisher.url, ticketEvents(0, 3)...)
	waitFor(t, ctx, "the first events", `demo.received.length >= 3`, 5*time.Second)
	// Nothing was published on the notifications channel yet: its position
	// comes from the whole cursor the stream carries (see relay.js).
	if got := eval[string](t, ctx, `demo.relay.position("user_1_notifications")`); got == "" {
		t.Fatal("the page does not know its position on the quiet notifications channel: it would resume it live only")
	}

	started := time.Now()
	a.stop(t)
	waitFor(t, ctx, "the page to see the drop", `demo.relay.state.status === "reconnecting"`, 5*time.Second)
	want = append(want, publishAll(t, publisher.url, ticketEvents(3, 10)...)...)
	notes := publishAll(t, publisher.url, notification("1", 2), notification("1", 3))
	time.Sleep(300 * time.Millisecond) // a failed attempt or two against the closed port

	host := strings.TrimPrefix(a.url, "http://")
	start(t, env(host))
	waitFor(t, ctx, "the page to resume", `demo.relay.state.status === "open" && demo.received.length >= 13`, 10*time.Second)
	t.Logf("page resumed %v after the relay stopped", time.Since(started).Round(time.Millisecond))
	want = append(want, publishAll(t, publisher.url, ticketEvents(13, 2)...)...)
	waitFor(t, ctx, "live events after the resume", `demo.received.length >= 15`, 5*time.Second)
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show up
	sameIDs(t, "across the restart", receivedIDs(t, ctx), want)
	if got := eval[string](t, ctx, `demo.relay.position("user_1_notifications")`); got != notes[1] {
		t.Errorf("notifications channel at %s, want %s (the last one published while relay was down)", got, notes[1])
	}
	if d := eval[int](t, ctx, `demo.relay.stats.duplicates`); d != 0 {
		t.Errorf("relay sent %d duplicates; want none", d)
	}
	if n := eval[int](t, ctx, `demo.resets.length`); n != 0 {
		t.Errorf("got %d resets; the Redis log kept the history, want none", n)
	}
	waitFor(t, ctx, "the activity log to show the recovery", `document.querySelector("#log").textContent.includes("caught up from the cursor")`, 2*time.Second)
}

// TestBrowserResetAfterMemoryRestart restarts a memory-store relay: its
// history is gone, and the page is told so with a reset it can act on.
func TestBrowserResetAfterMemoryRestart(t *testing.T) {
	b := browser(t)
	a := start(t, devEnv(nil))
	ctx, _ := tab(t, b)
	openDemo(t, ctx, a.url, "user=carol&share=0&backoff=100,1000")
	first := publishAll(t, a.url, ticketEvents(0, 2)...)
	waitFor(t, ctx, "2 events", `demo.received.length >= 2`, 5*time.Second)
	a.stop(t)
	waitFor(t, ctx, "the page to see the drop", `demo.relay.state.status === "reconnecting"`, 5*time.Second)
	a2 := start(t, devEnv(map[string]string{"RELAY_ADDR": strings.TrimPrefix(a.url, "http://")}))
	waitFor(t, ctx, "a reset for the tickets channel", `demo.resets.some(r => r.channel === "project_1_tickets")`, 10*time.Second)
	waitFor(t, ctx, "the connection to be open", `demo.relay.state.status === "open"`, 5*time.Second)
	more := publishAll(t, a2.url, ticketEvents(2, 2)...)
	waitFor(t, ctx, "live events in the new epoch", `demo.received.length >= 4`, 5*time.Second)
	sameIDs(t, "across the reset", receivedIDs(t, ctx), append(first, more...))
	waitFor(t, ctx, "the activity log to show the reset", `document.querySelector("#log").textContent.includes("refetching")`, 2*time.Second)
}

func TestBrowserTokenRefresh(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(nil))
	var all []string // the demo replays the tickets' history on sign-in: the first run's events come first
	for _, transport := range []string{"sse", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			ctx, _ := tab(t, b)
			do(t, ctx, chromedp.Navigate(r.url+"/?share=0&backoff=50,500&transport="+transport))
			// A token that expires within two seconds; the page's getToken
			// then mints fresh ones through /api/dev/token.
			short, err := auth.Mint([]byte(testSecret), auth.Identity{UserID: "1", Name: "alice", Projects: []string{"1"}, Publish: []string{"project_1_*"}}, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, ctx, "the demo script", `window.demo`, 5*time.Second)
			eval[bool](t, ctx, `demo.signIn("alice", {token: "`+short+`"}).then(() => true)`)
			waitFor(t, ctx, "the connection", `demo.relay.state.status === "open"`, 5*time.Second)
			want := append(all, publishAll(t, r.url, ticketEvents(0, 2)...)...)
			waitFor(t, ctx, "the token to expire and be refreshed", `demo.tokenFetches >= 1 && demo.relay.stats.tokenRefreshes >= 1`, 6*time.Second)
			want = append(want, publishAll(t, r.url, ticketEvents(2, 2)...)...)
			waitFor(t, ctx, "the connection to resume", `demo.relay.state.status === "open" && demo.received.length >= `+strconv.Itoa(len(want)), 5*time.Second)
			sameIDs(t, "across the token refresh", receivedIDs(t, ctx), want)
			all = want
			if got := eval[string](t, ctx, `demo.relay.state.transport`); got != transport {
				t.Errorf("transport changed to %s", got)
			}
		})
	}
}

func TestBrowserPresenceAndTyping(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(map[string]string{"RELAY_PRESENCE_GRACE": "500ms", "RELAY_TYPING_TIMEOUT": "3s"}))
	alice, _ := tab(t, b)
	bob, closeBob := tab(t, b)
	openDemo(t, alice, r.url, "user=alice")                 // SSE: actions over HTTP
	openDemo(t, bob, r.url, "user=bob&transport=websocket") // WebSocket: actions over it
	online := `[...document.querySelectorAll("#online [data-user]")].map(e => e.dataset.user).join()`
	for _, ctx := range []context.Context{alice, bob} {
		waitFor(t, ctx, "alice and bob online", online+` === "alice,bob"`, 5*time.Second)
	}

	// Viewing: both open ticket 103.
	do(t, alice, chromedp.Click(chromedp.CSS(`[data-ticket="103"]`)))
	waitFor(t, bob, "alice viewing #103", `document.querySelector('#online [data-user="alice"]').textContent.includes("viewing #103")`, 5*time.Second)
	do(t, bob, chromedp.Click(chromedp.CSS(`[data-ticket="103"]`)))
	waitFor(t, alice, "bob viewing #103", `document.querySelector("#detail-viewers").textContent.includes("bob")`, 5*time.Second)

	// Typing, then stopping (blur) ends it at once.
	do(t, alice, chromedp.SendKeys(chromedp.CSS(`#comment`), "looks good"))
	waitFor(t, bob, "alice typing", `document.querySelector("#typing-line").textContent === "alice is typing…"`, 5*time.Second)
	waitFor(t, bob, "the typing pill on #103", `document.querySelector('[data-ticket="103"] .typing-pill')?.textContent.includes("alice")`, 2*time.Second)
	do(t, alice, chromedp.Click(chromedp.CSS(`#detail-title`)))
	waitFor(t, bob, "alice to stop typing", `document.querySelector("#typing-line").textContent === ""`, 5*time.Second)

	// Typing without a refresh runs out by itself.
	do(t, bob, chromedp.SendKeys(chromedp.CSS(`#comment`), "hm"))
	waitFor(t, alice, "bob typing", `document.querySelector("#typing-line").textContent === "bob is typing…"`, 5*time.Second)
	typedAt := time.Now()
	waitFor(t, alice, "bob's typing to run out", `document.querySelector("#typing-line").textContent === ""`, 10*time.Second)
	t.Logf("typing indicator cleared %v after the last keystroke", time.Since(typedAt).Round(100*time.Millisecond))

	// Bob leaves.
	closeBob()
	waitFor(t, alice, "bob gone", online+` === "alice"`, 10*time.Second)
}

func TestBrowserUnreadAcrossTabs(t *testing.T) {
	cases := []struct{ name, query string }{
		{"tabs sharing one connection", "user=alice"},
		{"a connection per tab", "user=alice&share=0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := browser(t)
			r := start(t, devEnv(nil))
			one, _ := tab(t, b)
			two, _ := tab(t, b)
			openDemo(t, one, r.url, c.query)
			openDemo(t, two, r.url, c.query)
			if c.query == "user=alice" {
				roles := eval[string](t, one, `demo.relay.state.role`) + "," + eval[string](t, two, `demo.relay.state.role`)
				if roles != "leader,follower" {
					t.Fatalf("got roles %s, want leader,follower", roles)
				}
			}
			badge := func(n string) string {
				if n == "" {
					return `document.getElementById("badge").hidden`
				}
				return `!document.getElementById("badge").hidden && document.getElementById("badge").textContent === "` + n + `"`
			}
			ids := publishAll(t, r.url, notification("1", 1), notification("1", 2), notification("1", 3))
			for _, ctx := range []context.Context{one, two} {
				waitFor(t, ctx, "3 unread", badge("3"), 5*time.Second)
			}
			do(t, one, chromedp.Click(chromedp.CSS(`#bell`)), chromedp.Click(chromedp.CSS(`#notif-list [data-id="`+ids[0]+`"]`)))
			for _, ctx := range []context.Context{one, two} {
				waitFor(t, ctx, "2 unread after one was read in tab one", badge("2"), 5*time.Second)
			}
			do(t, two, chromedp.Click(chromedp.CSS(`#bell`)), chromedp.Click(chromedp.CSS(`#mark-all`)))
			for _, ctx := range []context.Context{one, two} {
				waitFor(t, ctx, "none unread after tab two marked all", badge(""), 5*time.Second)
			}
		})
	}
}

// TestBrowserShareHandover closes the tab that holds the shared connection:
// the other tab takes over and resumes from the cursor it followed.
func TestBrowserShareHandover(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(nil))
	leader, closeLeader := tab(t, b)
	follower, _ := tab(t, b)
	openDemo(t, leader, r.url, "user=alice&backoff=50,500")
	openDemo(t, follower, r.url, "user=alice&backoff=50,500")
	if got := eval[string](t, follower, `demo.relay.state.role`); got != "follower" {
		t.Fatalf("second tab: got role %s, want follower", got)
	}
	want := publishAll(t, r.url, ticketEvents(0, 3)...)
	for _, ctx := range []context.Context{leader, follower} {
		waitFor(t, ctx, "3 events in each tab", `demo.received.length >= 3`, 5*time.Second)
	}
	sameIDs(t, "follower before the hand-over", receivedIDs(t, follower), want)

	closeLeader()
	want = append(want, publishAll(t, r.url, ticketEvents(3, 3)...)...) // while no tab holds a connection, or soon after
	waitFor(t, follower, "the follower to lead", `demo.relay.state.role === "leader" && demo.relay.state.status === "open"`, 5*time.Second)
	want = append(want, publishAll(t, r.url, ticketEvents(6, 2)...)...)
	waitFor(t, follower, "8 events", `demo.received.length >= 8`, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	sameIDs(t, "across the hand-over", receivedIDs(t, follower), want)
	if d := eval[int](t, follower, `demo.relay.stats.duplicates`); d != 0 {
		t.Errorf("got %d duplicates, want none", d)
	}
}

// TestDemoScreenshot renders the demo with two users at work and checks the
// page draws; RELAY_SCREENSHOT=path also saves it (web/demo.png comes from
// RELAY_SCREENSHOT=$PWD/web/demo.png go test -run TestDemoScreenshot ./app).
func TestDemoScreenshot(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(nil))
	alice, _ := tab(t, b)
	bob, _ := tab(t, b)
	openDemo(t, alice, r.url, "user=alice")
	openDemo(t, bob, r.url, "user=bob")
	do(t, bob, chromedp.Click(chromedp.CSS(`[data-ticket="102"]`)))
	publishAll(t, r.url,
		map[string]any{"channel": "project_1_tickets", "type": "comment_added", "data": map[string]any{"ticket_id": 101, "author": "bob", "text": "Reproduced on Safari 17.2: the bundle fails to parse."}},
		map[string]any{"channel": "project_1_tickets", "type": "comment_added", "data": map[string]any{"ticket_id": 101, "author": "carol", "text": "Likely the optional chaining in auth.js. Patch coming."}},
		map[string]any{"channel": "project_1_tickets", "type": "ticket_update", "action": "updated", "data": map[string]any{"ticket_id": 104, "title": "Slow search on projects with 10k tickets", "status": "in progress", "updated_by": "carol"}},
		map[string]any{"channel": "user_1_notifications", "type": "notification_message", "data": map[string]any{"id": "n1", "title": "Ticket assigned", "message": "You were assigned to #104"}},
		map[string]any{"channel": "user_1_notifications", "type": "notification_message", "data": map[string]any{"id": "n2", "title": "bob mentioned you", "message": `in #101: "can you take a look?"`}},
	)
	do(t, bob, chromedp.SendKeys(chromedp.CSS(`#comment`), "On it"))
	waitFor(t, alice, "bob typing in #102", `document.querySelector('[data-ticket="102"] .typing-pill')`, 5*time.Second)
	waitFor(t, alice, "two notifications", `document.getElementById("badge").textContent === "2"`, 5*time.Second)
	do(t, alice, chromedp.EmulateViewport(1360, 900))
	png, err := chromedp.Run(alice, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 20<<10 {
		t.Fatalf("got a %d-byte screenshot, want a PNG of a drawn page", len(png))
	}
	if path := os.Getenv("RELAY_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// TestBrowserForbiddenStops asks for a channel the token may not read: the
// client stops at once, over either transport, and says why.
func TestBrowserForbiddenStops(t *testing.T) {
	b := browser(t)
	r := start(t, devEnv(nil))
	bob := mint(t, auth.Identity{UserID: "2", Name: "bob", Projects: []string{"1"}})
	for _, transport := range []string{"auto", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			ctx, _ := tab(t, b)
			do(t, ctx, chromedp.Navigate(r.url+"/?share=0"))
			waitFor(t, ctx, "the demo script", `window.demo`, 5*time.Second)
			eval[bool](t, ctx, `import("/relay.js").then(m => {
				window.refused = new m.Relay({token: "`+bob+`", transport: "`+transport+`", backoff: {initial: 50, max: 100}});
				refused.subscribe(["user_1_notifications"], () => {});
				return true;
			})`)
			waitFor(t, ctx, "the client to stop", `refused.state.status === "closed"`, 5*time.Second)
			time.Sleep(300 * time.Millisecond) // several backoff windows: no retry may follow
			got := eval[map[string]any](t, ctx, `({error: refused.state.error.error, message: refused.state.error.message, fatal: refused.state.error.fatal, connects: refused.stats.connects, transport: refused.state.transport})`)
			// relay's reason: over SSE (from the JSON probe) it names the channel;
			// a WebSocket close frame carries a shorter hint.
			if msg, _ := got["message"].(string); got["error"] != "forbidden" || got["fatal"] != true || !strings.Contains(msg, "may not read") {
				t.Fatalf("got %v, want a fatal forbidden error with relay's reason", got)
			}
			if got["connects"] != float64(1) {
				t.Errorf("got %v connection attempts over %v, want 1: a refusal is not retried", got["connects"], got["transport"])
			}
		})
	}
}
