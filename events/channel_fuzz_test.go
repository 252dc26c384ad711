package events_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/relaydev/relay/events"
)

// FuzzChannel checks channel names and patterns against their definitions:
// a name is 1 to MaxChannelLen bytes of [A-Za-z0-9_.:-]; a pattern may also
// hold '*', which matches any run of bytes. Refusals wrap ErrInvalid with a
// UTF-8 message; MatchPattern agrees with a plain reference matcher.
func FuzzChannel(f *testing.F) {
	for _, s := range [][2]string{
		{"project_7_*", "project_7_tickets"},
		{"project_7_*", "project_77_tickets"},
		{"*", "a"},
		{"*_notifications", "user_1_notifications"},
		{"a*b*c", "aXbYbc"},
		{"a*b*c", "abcb"},
		{"**", ""},
		{"user_1_notifications", "user_1_notifications"},
		{"a b", "a b"},
		{"é*", "é"},
		{"*\xff", "x\xff"},
		{strings.Repeat("a", 200), strings.Repeat("a", 201)},
		{"a*a*a*a*a*a*a*a*b", strings.Repeat("a", 200)},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		for _, s := range []string{pattern, name} {
			checkName(t, s, events.ValidateChannel(s), false)
			checkName(t, s, events.ValidatePattern(s), true)
		}
		if got, want := events.MatchPattern(pattern, name), globMatch(pattern, name); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, want %v", pattern, name, got, want)
		}
		if events.ValidateChannel(name) == nil {
			if !events.MatchPattern(name, name) || !events.MatchPattern("*", name) {
				t.Fatalf("channel %q does not match itself or *", name)
			}
			if id, ok := events.ProjectOf(name); ok {
				if !strings.HasPrefix(name, "project_"+id+"_") || strings.Contains(id, "_") {
					t.Fatalf("ProjectOf(%q) = %q: want the id between project_ and the next _", name, id)
				}
			}
		}
		if events.ValidateID("project", name) == nil {
			for _, ch := range []string{events.TicketsChannel(name), events.PresenceChannel(name), events.NotificationsChannel(name)} {
				if err := events.ValidateChannel(ch); err != nil {
					t.Fatalf("id %q makes channel %q: %v", name, ch, err)
				}
			}
			if id, ok := events.ProjectOf(events.TicketsChannel(name)); !ok || id != name {
				t.Fatalf("ProjectOf(TicketsChannel(%q)) = %q, %v", name, id, ok)
			}
		}
	})
}

// checkName checks one verdict of ValidateChannel (star false) or
// ValidatePattern (star true) against the definition.
func checkName(t *testing.T, s string, err error, star bool) {
	t.Helper()
	want := s != "" && len(s) <= events.MaxChannelLen
	for i := 0; i < len(s) && want; i++ {
		c := s[i]
		want = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("_.:-", c) >= 0 || star && c == '*'
	}
	if (err == nil) != want {
		t.Fatalf("%q (pattern %v): got %v, want valid %v", s, star, err, want)
	}
	if err != nil && (!errors.Is(err, events.ErrInvalid) || !utf8.ValidString(err.Error())) {
		t.Fatalf("%q: error %q must wrap ErrInvalid and be UTF-8", s, err)
	}
}

// globMatch is the reference matcher: dynamic programming over bytes, '*'
// matching any run of bytes.
func globMatch(pattern, name string) bool {
	// m[j]: pattern[:i] matches name[:j].
	m := make([]bool, len(name)+1)
	m[0] = true
	for i := 0; i < len(pattern); i++ {
		next := make([]bool, len(name)+1)
		if pattern[i] == '*' {
			seen := false
			for j := range m {
				seen = seen || m[j]
				next[j] = seen
			}
		} else {
			for j := 1; j <= len(name); j++ {
				next[j] = m[j-1] && name[j-1] == pattern[i]
			}
		}
		m = next
	}
	return m[len(name)]
}
