package transport

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// TestEndings: each way relay ends a live stream has one ending, the same
// message on both transports, short enough for a close frame; an expired
// token is refused with 4001 but ends a live stream with 4002.
func TestEndings(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		event string
		close int
		retry retryHint
	}{
		{"token expired", errTokenExpired, "token_expired", CloseTokenExpired, retryNone},
		{"slow consumer", errSlowConsumer, "slow_consumer", CloseSlowConsumer, retryNone},
		{"shutdown", errRestarting, "shutdown", CloseGoingAway, retrySpread},
		{"hub closed", fmt.Errorf("hub: %w", events.ErrClosed), "shutdown", CloseGoingAway, retrySpread},
		{"store down", fmt.Errorf("read: %w", events.ErrUnavailable), "error", CloseTryAgain, retryBase},
		{"flood", errFlood, "error", CloseRateLimited, retryNone},
		{"fault", fmt.Errorf("read: %w", errors.New("boom")), "error", CloseInternal, retryBase},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := endingOf(c.err)
			if e.event != c.event || e.close != c.close || e.retry != c.retry {
				t.Errorf("got event %q close %d retry %d, want %q %d %d", e.event, e.close, e.retry, c.event, c.close, c.retry)
			}
			if e.message == "" || len(e.message) > 123 || strings.HasSuffix(e.message, ": "+errors.Unwrap(c.err).Error()) {
				t.Errorf("message %q: want the error's own words, at most 123 bytes, without its sentinel", e.message)
			}
		})
	}
	if got := classify(auth.ErrTokenExpired).close; got != CloseUnauthorized {
		t.Errorf("refusing an expired token: got close %d, want %d", got, CloseUnauthorized)
	}
	if got := endingOf(errTokenExpired).message; got != "your token expired: fetch a fresh token and reconnect with your last event id" {
		t.Errorf("token expiry message: got %q", got)
	}
}

// jsCase is one case of relay-core.js's wsCloseAction or sseEventAction.
type jsCase struct{ action, error string }

// readJSCases reads the cases of function fn in relay-core.js: each case
// label (a close code, or a quoted event name) with the action and error
// its return names; error: name means the label itself.
func readJSCases(t *testing.T, src, fn string) map[string]jsCase {
	t.Helper()
	start := strings.Index(src, "export function "+fn+"(")
	if start < 0 {
		t.Fatalf("relay-core.js has no function %s", fn)
	}
	body := src[start:]
	if end := strings.Index(body, "\n}\n"); end > 0 {
		body = body[:end]
	}
	label := regexp.MustCompile(`^\s*case ("?[\w]+"?):\s*$`)
	ret := regexp.MustCompile(`^\s*return \{ action: "(\w+)", error: ("\w+"|name)`)
	out := map[string]jsCase{}
	var pending []string
	for line := range strings.SplitSeq(body, "\n") {
		if m := label.FindStringSubmatch(line); m != nil {
			pending = append(pending, strings.Trim(m[1], `"`))
			continue
		}
		if m := ret.FindStringSubmatch(line); m != nil && len(pending) > 0 {
			for _, l := range pending {
				e := strings.Trim(m[2], `"`)
				if m[2] == "name" {
					e = l
				}
				out[l] = jsCase{action: m[1], error: e}
			}
			pending = nil
		}
	}
	if len(out) == 0 {
		t.Fatalf("read no cases of %s in relay-core.js", fn)
	}
	return out
}

// jsFault is relay-core.js's error name for a fault of relay's, on both
// transports (close 1011, SSE event "error"); Go's code is "internal".
const jsFault = "server_error"

// TestBrowserClientKnowsTheEndings keeps web/relay-core.js in step with the
// error table: every close code it acts on is one relay sends, under the
// name Go gives it; every SSE ending relay sends is one it acts on, the same
// way as the close code of that ending.
func TestBrowserClientKnowsTheEndings(t *testing.T) {
	raw, err := os.ReadFile("../web/relay-core.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(raw)
	ws := readJSCases(t, src, "wsCloseAction")
	sse := readJSCases(t, src, "sseEventAction")

	// The names Go gives each close code: its refusals' JSON codes and its
	// live endings' event names.
	names := map[int][]string{}
	add := func(code int, name string) { names[code] = append(names[code], name) }
	rows := append([]failure{internal}, tableFailures()...)
	for _, f := range rows {
		add(f.close, f.code)
		e := endingOf(errorOf(f))
		if e.event != "error" {
			add(e.close, e.event)
		}
	}
	names[CloseInternal] = append(names[CloseInternal], jsFault)
	for label, c := range ws {
		code, err := strconv.Atoi(label)
		if err != nil {
			t.Fatalf("wsCloseAction case %q is not a close code", label)
		}
		if !slices.Contains(names[code], c.error) {
			t.Errorf("relay-core.js close %d is %q; relay names that code %v", code, c.error, names[code])
		}
	}

	// Every ending relay sends: the SSE event is handled, as its close code is.
	for _, f := range rows {
		e := endingOf(errorOf(f))
		jsName := e.event
		if e.event == "error" {
			jsName = jsFault
		}
		s, ok := sse[e.event]
		if !ok {
			t.Errorf("relay ends SSE streams with %q, which relay-core.js's sseEventAction does not handle", e.event)
			continue
		}
		if s.error != jsName {
			t.Errorf("relay-core.js SSE %q is %q, want %q", e.event, s.error, jsName)
		}
		if w, ok := ws[strconv.Itoa(e.close)]; ok && e.event != "error" && w.action != s.action {
			t.Errorf("ending %q: relay-core.js does %q after the SSE event but %q after close %d", e.event, s.action, w.action, e.close)
		}
	}
	for name := range sse {
		found := false
		for _, f := range rows {
			found = found || endingOf(errorOf(f)).event == name
		}
		if !found {
			t.Errorf("relay-core.js handles SSE event %q, which relay never sends", name)
		}
	}
}

func tableFailures() []failure {
	out := make([]failure, len(failures))
	for i, f := range failures {
		out[i] = f.failure
	}
	return out
}

// errorOf is an error of failure f's row (a fault for internal).
func errorOf(f failure) error {
	for _, row := range failures {
		if row.failure == f {
			return fmt.Errorf("test: %w", row.err)
		}
	}
	return errors.New("test fault")
}
