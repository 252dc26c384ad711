package events_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

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
