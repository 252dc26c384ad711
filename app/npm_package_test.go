package main

// The npm package of the browser client, as an app team uses it: a Vite +
// React + TypeScript app (web/testapp) installs it by path, type-checks with
// tsc --noEmit, builds, and runs in headless Chromium against a real relay,
// receiving events through Relay and through the React hooks on one
// connection. It needs node >= 20.19 and npm (Vite 7), and the npm registry
// for the app's own dependencies (the first run downloads ~30 MB into npm's
// cache); skipped only with -short.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relaydev/relay/auth"
)

// npmTimeout bounds each npm step: a cold install on a slow link, not a hang.
const npmTimeout = 4 * time.Minute

func TestNPMPackageInViteApp(t *testing.T) {
	if testing.Short() {
		t.Skip("npm package test: needs the npm registry and a Vite build; skipped with -short")
	}
	b := browser(t)
	checkNode(t)
	began := time.Now()
	dist := buildTestApp(t)
	t.Logf("npm install + tsc --noEmit + vite build: %v", time.Since(began).Round(100*time.Millisecond))

	page := httptest.NewServer(http.FileServer(http.Dir(dist)))
	t.Cleanup(page.Close)
	r := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_ALLOWED_ORIGINS": page.URL})

	// History the page has never seen: its state, replayed from cursor "0".
	before := publishAll(t, r.url, ticketEvents(1, 3)...)

	token := mint(t, auth.Identity{UserID: "1", Name: "alice", Projects: []string{"1"}})
	ctx, _ := tab(t, b)
	do(t, ctx, chromedp.Navigate(page.URL+"/?relay="+r.url+"&token="+token))
	waitFor(t, ctx, "both connections to open", `window.testapp && testapp.plainRelay.state.status === "open" && testapp.hookRelay && testapp.hookRelay.state.status === "open"`, 15*time.Second)
	waitFor(t, ctx, "the history before the page", `testapp.plain.length >= 3`, 5*time.Second)

	live := publishAll(t, r.url, append(ticketEvents(4, 2), notification("1", 1))...)
	waitFor(t, ctx, "the live ticket events in Relay and useRelay", `testapp.plain.length >= 5 && testapp.hook.length >= 2`, 5*time.Second)
	waitFor(t, ctx, "the notification in useNotifications", `document.getElementById("unread").textContent === "1" && testapp.toasts.length === 1`, 5*time.Second)

	sameIDs(t, "Relay subscribed with cursor 0", eval[[]string](t, ctx, `testapp.plain`), append(before, live[:2]...))
	sameIDs(t, "useRelay (live only)", eval[[]string](t, ctx, `testapp.hook`), live[:2])
	sameIDs(t, "useNotifications' toast", eval[[]string](t, ctx, `testapp.toasts`), live[2:])
	if got := eval[string](t, ctx, `document.getElementById("notes").textContent`); got != "Notification 1" {
		t.Errorf("the notifications list shows %q, want Notification 1", got)
	}
	// The hooks share the provider's one connection: the notifications
	// channel was on it from the first attempt (StrictMode and getToken too).
	if got := eval[int](t, ctx, `testapp.hookRelay.stats.connects`); got != 1 {
		t.Errorf("the provider's Relay connected %d times, want 1", got)
	}
	if got := eval[string](t, ctx, `testapp.hookRelay.channels.slice().sort().join(" ")`); got != "project_1_tickets user_1_notifications" {
		t.Errorf("the provider's connection carries %q", got)
	}
	if got := eval[int](t, ctx, `testapp.resets.length`); got != 0 {
		t.Errorf("%d resets, want none", got)
	}
}

// checkNode fails, saying what to install, unless node and npm can run Vite 7.
func checkNode(t *testing.T) {
	t.Helper()
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node: %v: install Node.js >= 20.19 with npm (e.g. from nodejs.org or NodeSource)", err)
	}
	m := regexp.MustCompile(`^v(\d+)\.(\d+)`).FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		t.Fatalf("node --version said %q", out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < 20 || (major == 20 && minor < 19) || (major == 21) || (major == 22 && minor < 12) {
		t.Fatalf("node %s: Vite 7 needs 20.19+ or 22.12+", strings.TrimSpace(string(out)))
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm not found: install it (Debian: apt-get install npm; NodeSource's nodejs includes it)")
	}
}

// buildTestApp copies the package (web/'s files) and web/testapp into a temp
// folder, as a checkout has them, installs and builds there, and returns the
// built site. The package is installed by path and copied into node_modules
// (the app's .npmrc sets install-links), which honours package.json "files":
// a module missing from it fails the build.
func buildTestApp(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	pkg := filepath.Join(tmp, "web")
	copyTree(t, "../web", pkg, func(rel string, dir bool) bool { return !dir || rel == "." })
	app := filepath.Join(pkg, "testapp")
	copyTree(t, "../web/testapp", app, func(rel string, dir bool) bool {
		return rel != "node_modules" && rel != "dist"
	})
	npm(t, app, "install", "--no-audit", "--no-fund")
	npm(t, app, "run", "build")
	return filepath.Join(app, "dist")
}

func npm(t *testing.T, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_loglevel=warn")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}

// copyTree copies regular files from src to dst; keep decides, by path
// relative to src, which entries to copy (directories: whether to descend).
func copyTree(t *testing.T, src, dst string, keep func(rel string, dir bool) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if !keep(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(fmt.Errorf("copy %s: %w", src, err))
	}
}
