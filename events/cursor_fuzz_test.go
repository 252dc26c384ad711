package events_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/relaydev/relay/events"
)

// fuzzChannels are the channel sets a fuzzed cursor is parsed for: one
// channel (a bare envelope id is its cursor) and several.
var fuzzChannels = [][]string{
	{"c"},
	{"project_1_tickets", "user_1_notifications", "a.b:c-d"},
}

// FuzzParseCursor checks cursor parsing: bad input is ErrInvalid with a
// UTF-8 message; a parsed cursor names only the connection's channels, and
// its text form (what the SSE id line carries) is short printable ASCII
// that parses back to the same cursor and formats the same again.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{
		"", "0", "00", "-", "-1", "abc-", "abc-1", "abc-01", "abc-+1", "abc- 1", "ABC-1", "a-b-1",
		"k3j9x2ab-42", "k3j9x2ab-18446744073709551615", "k3j9x2ab-18446744073709551616",
		strings.Repeat("a", 32) + "-1", strings.Repeat("a", 33) + "-1", "0-0",
		"c=0", "c=abc-1", "c=abc-1,c=def-2", "c=abc-1,", ",c=abc-1", "c=", "=abc-1", "c=abc-1=2", "c=0,d=0",
		"project_1_tickets=k3j9x2ab-42,user_1_notifications=p0q9w8e7-3",
		"project_1_tickets=k3j9x2ab-42,other=abc-1", "bad chan=abc-1", "c=abc-1\n", "c=é-1", "\xff-1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, channels := range fuzzChannels {
			c, err := events.ParseCursor(s, channels)
			if err != nil {
				if !errors.Is(err, events.ErrInvalid) {
					t.Fatalf("ParseCursor(%q): %v does not wrap ErrInvalid", s, err)
				}
				if !utf8.ValidString(err.Error()) {
					t.Fatalf("ParseCursor(%q): message %q is not UTF-8", s, err)
				}
				continue
			}
			if s == "" {
				if c != nil {
					t.Fatalf("ParseCursor(\"\") = %v, want nil (live only)", c)
				}
				continue
			}
			for ch, p := range c {
				if !slices.Contains(channels, ch) {
					t.Fatalf("ParseCursor(%q) names %q, not a channel of %v", s, ch, channels)
				}
				checkPosition(t, p)
			}
			if len(c) < len(channels) {
				continue // the text form covers every channel of the connection
			}
			text := string(events.AppendCursor(nil, channels, func(ch string) events.Position { return c[ch] }))
			if len(text) > 16<<10 || !printableASCII(text) {
				t.Fatalf("cursor of %q formats as %q: want printable ASCII within 16 KiB", s, text)
			}
			again, err := events.ParseCursor(text, channels)
			if err != nil || !maps.Equal(again, c) {
				t.Fatalf("ParseCursor(%q) = %v, formatted %q, parsed again %v, %v", s, c, text, again, err)
			}
		}
	})
}

// FuzzParsePosition checks envelope ids: bad input is ErrInvalid; a parsed
// position formats as a canonical id that parses back to it.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0", "00", "0-0", "abc-1", "abc-007", "abc--1", "Abc-1", "abc-1 ", "abc-1.0", "-", "é-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := events.ParsePosition(s)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("ParsePosition(%q): %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		checkPosition(t, p)
		if p.IsBeginning() != (s == "0") {
			t.Fatalf("ParsePosition(%q) = %+v: Beginning only for \"0\"", s, p)
		}
	})
}

// checkPosition checks that p's text form is a short printable id that
// parses back to p.
func checkPosition(t *testing.T, p events.Position) {
	t.Helper()
	text := p.String()
	if text != string(p.AppendText(nil)) {
		t.Fatalf("%+v: String %q and AppendText %q differ", p, text, p.AppendText(nil))
	}
	if len(text) > 64 || !printableASCII(text) || strings.ContainsAny(text, ",=") {
		t.Fatalf("%+v formats as %q: want at most 64 bytes of printable ASCII without , or =", p, text)
	}
	back, err := events.ParsePosition(text)
	if err != nil || back != p {
		t.Fatalf("%+v formats as %q, which parses as %+v, %v", p, text, back, err)
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
