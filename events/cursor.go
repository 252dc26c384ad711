package events

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Position is a place in one channel's log: the log's epoch and the sequence
// number of an event in it. Sequence numbers start at 1 and have no gaps
// within an epoch; a new epoch (a reset or expired log) starts again at 1, so
// a cursor from another epoch is detected, not misread.
//
// Its text form, the envelope "id", is "<epoch>-<seq>", e.g. "k3j9x2ab-42".
//
// A channel that has no log has no epoch yet: its Head is an empty position
// (see EmptyPosition), which names the log's generation and the time it was
// taken instead, so reading never has to create a log.
type Position struct {
	Epoch string
	Seq   uint64
}

// Beginning is the sentinel position "before the oldest event kept": a read
// after it returns all the history the log still holds. Its text form is "0".
var Beginning = Position{}

// IsBeginning reports whether p is the Beginning sentinel.
func (p Position) IsBeginning() bool { return p == Beginning }

// String returns the position's text form, the envelope id.
func (p Position) String() string {
	if p.IsBeginning() {
		return "0"
	}
	return string(p.AppendText(nil))
}

// AppendText appends the text form of p to b without other allocations.
func (p Position) AppendText(b []byte) []byte {
	if p.IsBeginning() {
		return append(b, '0')
	}
	b = append(b, p.Epoch...)
	b = append(b, '-')
	return strconv.AppendUint(b, p.Seq, 10)
}

// ParsePosition parses an envelope id ("<epoch>-<seq>"), an empty position
// or "0" (Beginning).
func ParsePosition(s string) (Position, error) {
	if s == "0" {
		return Beginning, nil
	}
	epoch, seq, ok := strings.Cut(s, "-")
	if !ok || !validEpoch(epoch) {
		return Position{}, fmt.Errorf("event id %q is not of the form <epoch>-<seq> (or 0 for the oldest kept): %w", s, ErrInvalid)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("event id %q has a bad sequence number: %w", s, ErrInvalid)
	}
	p := Position{Epoch: epoch, Seq: n}
	if _, _, empty := p.Empty(); empty && n != 0 {
		return Position{}, fmt.Errorf("event id %q is an empty position with a sequence number other than 0: %w", s, ErrInvalid)
	}
	return p, nil
}

// An empty position is where a channel with no log stands: no epoch exists
// yet, and none is created by reading. Its epoch field is
//
//	"v" <generation: 12 lowercase letters or digits> <unix ms, base 36, 9 digits>
//
// 22 characters in all (real epochs, from NewEpoch, have 10), and its seq is
// 0: "v3f9a0c1d2e7b0mwzwqm0e-0" (generation 3f9a0c1d2e7b, taken at
// 2026-11-28T04:25:50.318Z). It is an ordinary "<epoch>-<seq>" to the
// cursor grammar (no ',', '=' or second '-'), and to a client that only
// checks that epochs are lowercase letters and digits.
//
// The generation names the log's lifetime (Redis: the server run, memory:
// the Memory value) and the time is the log's clock when the position was
// taken. A store's Read after an empty position answers with the events of
// an epoch created since, from its first, or ErrCursorGone when it cannot be
// sure no event was lost in between (another generation, an epoch created
// more than MaxAge later, a trimmed first event): see the stores' Read.
const (
	emptyMark  = 'v'
	genLen     = 12
	emptyMsLen = 9
	emptyLen   = 1 + genLen + emptyMsLen
	maxEmptyMs = 101559956668415 // 36^9 - 1: "zzzzzzzzz", in the year 5188
)

// EmptyPosition returns the empty position of a log of generation (12
// lowercase letters or digits) taken at time at (ms precision; from 1970 to
// the year 5188).
func EmptyPosition(generation string, at time.Time) (Position, error) {
	ms := at.UnixMilli()
	if len(generation) != genLen || !validEpoch(generation) {
		return Position{}, fmt.Errorf("empty position: generation %q is not %d lowercase letters or digits: %w", generation, genLen, ErrInvalid)
	}
	if ms < 0 || ms > maxEmptyMs {
		return Position{}, fmt.Errorf("empty position: time %v is out of range: %w", at, ErrInvalid)
	}
	b := make([]byte, 0, emptyLen)
	b = append(b, emptyMark)
	b = append(b, generation...)
	digits := strconv.AppendInt(nil, ms, 36)
	for range emptyMsLen - len(digits) {
		b = append(b, '0')
	}
	return Position{Epoch: string(append(b, digits...))}, nil
}

// Empty reports whether p is an empty position (see EmptyPosition), and if
// so the generation and time it names.
func (p Position) Empty() (generation string, at time.Time, ok bool) {
	e := p.Epoch
	if len(e) != emptyLen || e[0] != emptyMark || !validEpoch(e) {
		return "", time.Time{}, false
	}
	ms, err := strconv.ParseInt(e[1+genLen:], 36, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return e[1 : 1+genLen], time.UnixMilli(ms), true
}

// IsEmpty reports whether p is an empty position.
func (p Position) IsEmpty() bool {
	_, _, ok := p.Empty()
	return ok
}

// validEpoch: 1-32 lowercase letters or digits, the form stores generate
// (and empty positions take).
func validEpoch(e string) bool {
	if e == "" || len(e) > 32 {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Cursor is a connection's whole position: one Position per channel. A
// channel absent from a cursor is read live, from the moment the subscription
// is in place.
//
// Text form (the SSE "id:" line and the last_event_id a client sends):
//   - one channel: that channel's envelope id, "k3j9x2ab-42";
//   - several channels: "chan=id" pairs joined by ",", e.g.
//     "project_1_tickets=k3j9x2ab-42,user_1_notifications=p0q9w8e7-3";
//   - "0" alone: every channel from the oldest event kept.
//
// A client can build the multi-channel form from the "channel" and "id" of the
// last envelope it received on each channel.
type Cursor map[string]Position

// ParseCursor parses the text form of a cursor for a connection to channels.
// An empty s is a nil cursor (live only). Pairs naming channels outside
// channels are ignored, so a client may keep one cursor across pages.
func ParseCursor(s string, channels []string) (Cursor, error) {
	switch {
	case s == "":
		return nil, nil
	case len(s) > 16<<10:
		return nil, fmt.Errorf("cursor is %d bytes, over the 16 KiB limit: %w", len(s), ErrInvalid)
	case s == "0":
		c := make(Cursor, len(channels))
		for _, ch := range channels {
			c[ch] = Beginning
		}
		return c, nil
	case !strings.Contains(s, "="):
		if len(channels) != 1 {
			return nil, fmt.Errorf("cursor %q names no channel but the connection has %d; send chan=id pairs joined by ',': %w", s, len(channels), ErrInvalid)
		}
		p, err := ParsePosition(s)
		if err != nil {
			return nil, err
		}
		return Cursor{channels[0]: p}, nil
	}
	c := make(Cursor, len(channels))
	for pair := range strings.SplitSeq(s, ",") {
		ch, id, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("cursor part %q is not chan=id: %w", pair, ErrInvalid)
		}
		if err := ValidateChannel(ch); err != nil {
			return nil, fmt.Errorf("cursor: %w", err)
		}
		p, err := ParsePosition(id)
		if err != nil {
			return nil, fmt.Errorf("cursor for %s: %w", ch, err)
		}
		if slices.Contains(channels, ch) {
			c[ch] = p
		}
	}
	return c, nil
}

// AppendCursor appends the text form of the positions of channels (in that
// order) to b. A single channel yields its envelope id alone.
func AppendCursor(b []byte, channels []string, pos func(string) Position) []byte {
	if len(channels) == 1 {
		return pos(channels[0]).AppendText(b)
	}
	for i, ch := range channels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ch...)
		b = append(b, '=')
		b = pos(ch).AppendText(b)
	}
	return b
}

// NewEpoch returns a fresh random epoch: 10 lowercase letters and digits,
// never an empty position's.
// Stores call it when a channel's log starts (or starts again).
func NewEpoch() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var raw [10]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	for i, c := range raw {
		raw[i] = digits[int(c)%len(digits)]
	}
	return string(raw[:])
}
