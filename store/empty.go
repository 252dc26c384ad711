package store

import (
	"fmt"
	"time"

	"github.com/relaydev/relay/events"
)

// afterEmpty is the one rule for reading after an empty position (see
// events.EmptyPosition), which both stores apply to what they saw at one
// instant: the log's generation gen, and the channel's current epoch
// ("" when it has no log) with the time it was created (zero when not
// recorded, an epoch made by an older relay).
//
// It returns the position in epoch to read after, Seq 0, so the usual rules
// apply from there (a trimmed first event is ErrCursorGone); p itself when
// the channel has no log (no events: the client stays where it is); or
// ErrCursorGone when events may have been lost since p was taken:
//   - another generation: Redis restarted or failed over (or the memory
//     log is another process's), and an epoch created meanwhile may be gone;
//   - an epoch created maxAge or more after p: an epoch could have been
//     created and forgotten (idle for maxAge) in between;
//   - an epoch without a creation time: nothing tells when it started.
func afterEmpty(p events.Position, gen, epoch string, created time.Time, maxAge time.Duration) (events.Position, error) {
	g, at, ok := p.Empty()
	switch {
	case !ok:
		return events.Position{}, fmt.Errorf("store: read: %v is not an empty position: %w", p, events.ErrInvalid)
	case g != gen:
		return events.Position{}, events.ErrCursorGone
	case epoch == "":
		return p, nil
	case created.IsZero() || created.Sub(at) >= maxAge:
		return events.Position{}, events.ErrCursorGone
	}
	return events.Position{Epoch: epoch}, nil
}
