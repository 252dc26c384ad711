package events_test

import (
	"errors"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

func TestPositionRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		text string
		pos  events.Position
	}{
		{"0", events.Beginning},
		{"k3j9x2ab-42", events.Position{Epoch: "k3j9x2ab", Seq: 42}},
		{"a-0", events.Position{Epoch: "a", Seq: 0}},
		{"0abc-1", events.Position{Epoch: "0abc", Seq: 1}},
		{strings.Repeat("z", 32) + "-18446744073709551615", events.Position{Epoch: strings.Repeat("z", 32), Seq: 1<<64 - 1}},
	} {
		t.Run(tc.text, func(t *testing.T) {
			got, err := events.ParsePosition(tc.text)
			if err != nil || got != tc.pos {
				t.Fatalf("ParsePosition(%q): got %+v, %v, want %+v", tc.text, got, err, tc.pos)
			}
			if s := got.String(); s != tc.text {
				t.Errorf("String: got %q, want %q", s, tc.text)
			}
			if b := got.AppendText([]byte("x")); string(b) != "x"+tc.text {
				t.Errorf("AppendText: got %q, want %q", b, "x"+tc.text)
			}
			if got.IsBeginning() != (tc.text == "0") {
				t.Errorf("IsBeginning: got %v", got.IsBeginning())
			}
		})
	}
}

func TestParsePositionInvalid(t *testing.T) {
	for _, s := range []string{
		"", "-", "abc", "abc-", "-5", "ABC-1", "ab_c-1", "abc-x", "abc--1", "abc-1-2", "abc-+1", "abc- 1",
		strings.Repeat("a", 33) + "-1", "abc-18446744073709551616", "00", " 0",
	} {
		t.Run(s, func(t *testing.T) {
			if p, err := events.ParsePosition(s); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("ParsePosition(%q): got %+v, %v, want ErrInvalid", s, p, err)
			}
		})
	}
}

func TestParseCursor(t *testing.T) {
	one := []string{"a"}
	two := []string{"a", "b"}
	pa := events.Position{Epoch: "ea", Seq: 3}
	pb := events.Position{Epoch: "eb", Seq: 9}
	for _, tc := range []struct {
		name     string
		text     string
		channels []string
		want     events.Cursor
		wantErr  bool
	}{
		{"empty is live only", "", two, nil, false},
		{"0 is every channel from the start", "0", two, events.Cursor{"a": events.Beginning, "b": events.Beginning}, false},
		{"bare id on one channel", "ea-3", one, events.Cursor{"a": pa}, false},
		{"bare 0 on one channel", "0", one, events.Cursor{"a": events.Beginning}, false},
		{"bare id on two channels", "ea-3", two, nil, true},
		{"pairs", "a=ea-3,b=eb-9", two, events.Cursor{"a": pa, "b": pb}, false},
		{"pairs in another order", "b=eb-9,a=ea-3", two, events.Cursor{"a": pa, "b": pb}, false},
		{"one pair of two channels", "b=eb-9", two, events.Cursor{"b": pb}, false},
		{"a pair with 0", "a=0,b=eb-9", two, events.Cursor{"a": events.Beginning, "b": pb}, false},
		{"pair on one channel", "a=ea-3", one, events.Cursor{"a": pa}, false},
		{"other channels ignored", "x=ex-1,a=ea-3", one, events.Cursor{"a": pa}, false},
		{"not a pair", "a=ea-3,junk", two, nil, true},
		{"bad channel", "a b=ea-3", two, nil, true},
		{"bad id", "a=nope", two, nil, true},
		{"bad id for another channel", "x=nope,a=ea-3", one, nil, true},
		{"trailing comma", "a=ea-3,", two, nil, true},
		{"bad bare id", "x", one, nil, true},
		{"over 16 KiB", strings.Repeat("a=ea-3,", 3000) + "a=ea-3", one, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.ParseCursor(tc.text, tc.channels)
			if tc.wantErr {
				if !errors.Is(err, events.ErrInvalid) {
					t.Errorf("got %v, %v, want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("got %v, %v, want %v", got, err, tc.want)
			}
		})
	}
}

// TestCursorRoundTrip checks that the text AppendCursor writes parses back
// to the same positions: the SSE id line a browser sends back resumes
// every channel.
func TestCursorRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		channels []string
		cur      events.Cursor
		text     string
	}{
		{"one channel", []string{"a"}, events.Cursor{"a": {Epoch: "e1", Seq: 5}}, "e1-5"},
		{"one channel at the beginning", []string{"a"}, events.Cursor{"a": events.Beginning}, "0"},
		{"two channels, in connection order", []string{"b", "a"},
			events.Cursor{"a": {Epoch: "e1", Seq: 5}, "b": {Epoch: "e2", Seq: 0}}, "b=e2-0,a=e1-5"},
		{"a channel at the beginning", []string{"a", "b"},
			events.Cursor{"a": events.Beginning, "b": {Epoch: "e2", Seq: 7}}, "a=0,b=e2-7"},
		{"one channel with no log", []string{"a"}, events.Cursor{"a": mustEmpty(t, "0123456789ab", 1)}, "v0123456789ab000000001-0"},
		{"channels with and without a log", []string{"a", "b"},
			events.Cursor{"a": mustEmpty(t, "zzzzzzzzzzzz", 1_795_839_950_318), "b": {Epoch: "e2", Seq: 7}},
			"a=vzzzzzzzzzzzz0mwzwqm0e-0,b=e2-7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := string(events.AppendCursor(nil, tc.channels, func(ch string) events.Position { return tc.cur[ch] }))
			if text != tc.text {
				t.Errorf("AppendCursor: got %q, want %q", text, tc.text)
			}
			back, err := events.ParseCursor(text, tc.channels)
			if err != nil || !maps.Equal(back, tc.cur) {
				t.Errorf("ParseCursor(%q): got %v, %v, want %v", text, back, err, tc.cur)
			}
		})
	}
}

func TestNewEpoch(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		e := events.NewEpoch()
		if _, err := events.ParsePosition(e + "-1"); err != nil || len(e) != 10 {
			t.Fatalf("NewEpoch: got %q (%v), want 10 lowercase letters or digits", e, err)
		}
		if seen[e] {
			t.Fatalf("NewEpoch repeated %q", e)
		}
		seen[e] = true
	}
}

func mustEmpty(t *testing.T, gen string, ms int64) events.Position {
	t.Helper()
	p, err := events.EmptyPosition(gen, time.UnixMilli(ms))
	if err != nil {
		t.Fatalf("EmptyPosition(%q, %d): %v", gen, ms, err)
	}
	return p
}

// TestEmptyPosition: an empty position carries its generation and time
// through its text form, in a shape no real epoch has and every client that
// accepts "<epoch>-<seq>" of lowercase letters and digits (relay.js's
// parseId) carries unchanged.
func TestEmptyPosition(t *testing.T) {
	clientID := regexp.MustCompile(`^([a-z0-9]{1,32})-(\d{1,20})$`) // web/relay-core.js parseId
	for _, tc := range []struct {
		gen string
		at  time.Time
	}{
		{"3f9a0c1d2e7b", time.Date(2026, 11, 28, 4, 25, 50, 318e6, time.UTC)},
		{"000000000000", time.UnixMilli(0)},
		{"zzzzzzzzzzzz", time.UnixMilli(101559956668415)}, // the last representable ms
	} {
		p, err := events.EmptyPosition(tc.gen, tc.at)
		if err != nil {
			t.Fatalf("EmptyPosition(%q, %v): %v", tc.gen, tc.at, err)
		}
		text := p.String()
		back, err := events.ParsePosition(text)
		if err != nil || back != p {
			t.Fatalf("ParsePosition(%q) = %+v, %v; want %+v", text, back, err, p)
		}
		gen, at, ok := back.Empty()
		if !ok || gen != tc.gen || !at.Equal(tc.at) {
			t.Errorf("Empty() of %q = %q, %v, %v; want %q, %v, true", text, gen, at, ok, tc.gen, tc.at)
		}
		if !back.IsEmpty() || back.IsBeginning() || back.Seq != 0 {
			t.Errorf("%q: IsEmpty %v, IsBeginning %v, Seq %d; want true, false, 0", text, back.IsEmpty(), back.IsBeginning(), back.Seq)
		}
		if !clientID.MatchString(text) || strings.ContainsAny(text, ",= ") {
			t.Errorf("%q does not fit the client's id grammar", text)
		}
	}
	for range 1000 { // a real epoch is never an empty position
		if p := (events.Position{Epoch: events.NewEpoch(), Seq: 0}); p.IsEmpty() {
			t.Fatalf("real epoch %q reads as an empty position", p.Epoch)
		}
	}
	for _, s := range []string{"e2-0", "0", "v0123456789ab00000000-0", "v0123456789ab0000000001-0", "w0123456789ab000000001-0"} {
		if p, err := events.ParsePosition(s); err == nil && p.IsEmpty() {
			t.Errorf("ParsePosition(%q) = an empty position %+v, want none", s, p)
		}
	}
}

func TestEmptyPositionInvalid(t *testing.T) {
	for _, s := range []string{"v0123456789ab000000001-1", "v0123456789ab000000001-42"} {
		if p, err := events.ParsePosition(s); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("ParsePosition(%q) = %+v, %v; want ErrInvalid (an empty position has seq 0)", s, p, err)
		}
	}
	for _, tc := range []struct {
		name string
		gen  string
		at   time.Time
	}{
		{"short generation", "0123", time.UnixMilli(1)},
		{"long generation", "0123456789abc", time.UnixMilli(1)},
		{"generation with upper case", "0123456789AB", time.UnixMilli(1)},
		{"generation with a dash", "0123456789-b", time.UnixMilli(1)},
		{"before 1970", "0123456789ab", time.UnixMilli(-1)},
		{"after 5188", "0123456789ab", time.UnixMilli(101559956668416)},
	} {
		if p, err := events.EmptyPosition(tc.gen, tc.at); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s: EmptyPosition(%q, %v) = %+v, %v; want ErrInvalid", tc.name, tc.gen, tc.at, p, err)
		}
	}
}
