package events

import (
	"context"
	"time"
)

// tick is how often the loop looks for ended grace periods and typing.
const tick = 500 * time.Millisecond

// loop is the tracker's one goroutine.
func (t *Tracker) loop() {
	defer close(t.done)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	every := t.cfg.HoldTTL / 3
	nextBeat := time.Now().Add(every)
	for {
		select {
		case <-t.stop:
			return
		case now := <-ticker.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			t.endGrace(ctx, now)
			t.endTyping(ctx, now)
			if !now.Before(nextBeat) {
				nextBeat = now.Add(every)
				t.heartbeat(ctx, now)
				t.sweep(ctx, now)
			}
			cancel()
		}
	}
}

// endGrace lets go of users whose last connection closed over Grace ago.
func (t *Tracker) endGrace(ctx context.Context, now time.Time) {
	var gone []PresenceHold
	var names []string
	t.mu.Lock()
	for key, lu := range t.local {
		if lu.refs == 0 && !lu.leaveAt.After(now) {
			delete(t.local, key)
			delete(t.typing, key)
			gone = append(gone, key)
			names = append(names, lu.name)
		}
	}
	t.mu.Unlock()
	for i, key := range gone {
		last, err := t.store.Leave(ctx, key.Project, key.UserID, t.instance)
		if err != nil {
			t.logger.Warn("presence: leave failed; the hold expires by itself", "project", key.Project, "user", key.UserID, "err", err)
			continue
		}
		if last {
			t.announce(ctx, key.Project, "left", key.UserID, names[i])
		}
		// A connection that arrived while the hold was being released is
		// held again (announced again if others saw the user leave).
		t.mu.Lock()
		lu, back := t.local[key]
		t.mu.Unlock()
		if back {
			if err := t.join(ctx, key, lu.name); err != nil {
				t.logger.Warn("presence: rejoin failed", "project", key.Project, "user", key.UserID, "err", err)
			}
		}
	}
}

// endTyping tells the project when typing set here was not refreshed.
func (t *Tracker) endTyping(ctx context.Context, now time.Time) {
	var ended []PresenceHold
	t.mu.Lock()
	for key, until := range t.typing {
		if !until.After(now) {
			delete(t.typing, key)
			ended = append(ended, key)
		}
	}
	names := make([]string, len(ended))
	for i, key := range ended {
		if lu := t.local[key]; lu != nil {
			names[i] = lu.name
		}
	}
	t.mu.Unlock()
	for i, key := range ended {
		err := t.broadcast(ctx, key.Project, "typing", map[string]any{"user_id": key.UserID, "username": names[i], "ticket_id": nil, "is_typing": false})
		if err != nil {
			t.logger.Warn("presence: could not end typing", "project", key.Project, "user", key.UserID, "err", err)
		}
	}
}

// heartbeat refreshes every hold of this process in one store call.
func (t *Tracker) heartbeat(ctx context.Context, now time.Time) {
	t.mu.Lock()
	holds := make([]PresenceHold, 0, len(t.local))
	for key := range t.local {
		holds = append(holds, key)
	}
	t.mu.Unlock()
	if len(holds) == 0 {
		return
	}
	if err := t.store.Refresh(ctx, t.instance, holds, now.Add(t.cfg.HoldTTL)); err != nil {
		t.logger.Warn("presence: heartbeat failed; other processes may announce these users as left", "users", len(holds), "err", err)
	}
}

// sweep announces the users of processes that died.
func (t *Tracker) sweep(ctx context.Context, now time.Time) {
	gone, err := t.store.Sweep(ctx, now)
	if err != nil {
		t.logger.Warn("presence: sweep failed", "err", err)
		return
	}
	for _, d := range gone {
		t.announce(ctx, d.Project, "left", d.UserID, d.Name)
	}
}
