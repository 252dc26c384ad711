package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/relaydev/relay/auth"
)

// chromium finds Debian's Chromium; `task deps` installs it. A missing
// browser fails the test: browser tests are skipped only with -short.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	for _, name := range []string{os.Getenv("RELAY_TEST_CHROMIUM"), "chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: run `go run github.com/go-task/task/v3/cmd/task@v3.54.0 deps` (apt-get install chromium), or set RELAY_TEST_CHROMIUM")
	return ""
}

// browser starts a headless Chromium for the test and returns its first
// tab's context; more tabs come from tab. Cleanup closes it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // tests run as root here
		// This machine has no network: keep Chromium from trying.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1360, 860),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no deadline
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// tab opens a new tab of the same browser (tabs share BroadcastChannel and
// Web Locks, as a person's tabs do). Its cancel closes the tab.
func tab(t *testing.T, browserCtx context.Context) (context.Context, context.CancelFunc) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	t.Cleanup(cancel)
	logConsole(t, ctx)
	return ctx, cancel
}

// logConsole copies the page's console errors and uncaught exceptions to the
// test log, which is where a failing browser test's story is.
func logConsole(t *testing.T, ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if (m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning) && !strings.Contains(m.String(), "Failed to load resource") {
				t.Logf("page console %s: %s", m.Type, m)
			}
		}
	}()
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is truthy, within d, and
// says what it waited for when it is not.
func waitFor(t *testing.T, ctx context.Context, what, expr string, d time.Duration) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({state: demo.relay && demo.relay.state, stats: demo.relay && demo.relay.stats, received: demo.received && demo.received.length})`))
		t.Fatalf("waited %v for %s (%s): %v; page: %s", d, what, expr, err, state)
	}
}

// openDemo loads the demo page with query (e.g. "user=alice&share=0") and
// waits until its connection is open.
func openDemo(t *testing.T, ctx context.Context, baseURL, query string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(baseURL+"/?"+query))
	waitFor(t, ctx, "the demo's connection to open", `window.demo && demo.relay && demo.relay.state.status === "open"`, 10*time.Second)
}

// receivedIDs returns the ids of the ticket events the demo page received.
func receivedIDs(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return eval[[]string](t, ctx, `demo.received.map(e => e.id)`)
}

// blockEventSource makes every EventSource request of the tab fail, as a
// proxy that cannot stream would; fetch and WebSocket pass. (Chromium reports
// EventSource requests to the Fetch domain as XHR: they are told apart by
// the Accept header EventSource sends.)
func blockEventSource(t *testing.T, ctx context.Context) {
	t.Helper()
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/events?*"}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if accept, _ := ev.Request.Headers["Accept"].(string); accept == "text/event-stream" {
				_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionRefused})
			} else {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			}
		}
	}()
}

// beforeLoad runs script in the tab before any page script, on every load.
func beforeLoad(t *testing.T, ctx context.Context, script string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatal(err)
	}
}

// devEnv is the environment of a relay serving the demo in dev mode.
func devEnv(extra map[string]string) map[string]string {
	env := map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_DEV": "true"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// publishAll publishes events (JSON objects) as one batch through relay's API
// with a backend token, and returns their ids.
func publishAll(t *testing.T, url string, events ...map[string]any) []string {
	t.Helper()
	body, _ := json.Marshal(events)
	req, _ := http.NewRequest(http.MethodPost, url+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+mint(t, auth.Identity{UserID: "backend", Publish: []string{"*"}}))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ IDs []string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.IDs) != len(events) {
		t.Fatalf("publish: got %d, %v, %d ids", resp.StatusCode, err, len(out.IDs))
	}
	return out.IDs
}

// ticketEvents makes n test events for project 1's tickets, numbered from first.
func ticketEvents(first, n int) []map[string]any {
	evs := make([]map[string]any, n)
	for i := range evs {
		evs[i] = map[string]any{"channel": "project_1_tickets", "type": "test", "data": map[string]any{"n": first + i}}
	}
	return evs
}

// notification makes a notification event for user id.
func notification(user string, n int) map[string]any {
	return map[string]any{"channel": "user_" + user + "_notifications", "type": "notification_message",
		"data": map[string]any{"id": fmt.Sprintf("note-%d", n), "title": fmt.Sprintf("Notification %d", n), "message": "from the test"}}
}

// sameIDs fails unless got is want: every event once, in order.
func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: got ids\n  %v\nwant (each once, in order)\n  %v", what, got, want)
	}
}
