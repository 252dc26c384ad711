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
	// failed: the last heartbeat or sweep could not reach the store. The
	// first sweep after that waits one more heartbeat: when the store was
	// out of reach for this process, it probably was for the others too, and
	// their holds, expired meanwhile, are refreshed by their next heartbeat
	// (within one interval) rather than swept and announced as left. A hold
	// swept all the same is joined again by its process's heartbeat.
	failed := false
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
				answered := t.heartbeat(ctx, now)
				if answered && !failed {
					answered = t.sweep(ctx, now)
				}
				failed = !answered
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
		if user, back := t.rejoinUser(key); back {
			if err := t.join(ctx, key, user); err != nil {
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

// heartbeat refreshes every hold of this process in one store call, and
// joins again, through the ordinary join, the holds the store no longer has
// (swept by another process during an outage, or lost by Redis): a user no
// process holds any more is announced joined again, with their name and the
// ticket they view as this process knows them. It reports whether the store
// answered (true when there was nothing to refresh).
func (t *Tracker) heartbeat(ctx context.Context, now time.Time) bool {
	t.mu.Lock()
	holds := make([]PresenceHold, 0, len(t.local))
	for key := range t.local {
		holds = append(holds, key)
	}
	t.mu.Unlock()
	if len(holds) == 0 {
		return true
	}
	missing, err := t.store.Refresh(ctx, t.instance, holds, now.Add(t.cfg.HoldTTL))
	if err != nil {
		t.logger.Warn("presence: heartbeat failed; other processes may announce these users as left", "users", len(holds), "err", err)
		return false
	}
	if len(missing) > 0 {
		t.logger.Warn("presence: holds were gone (swept while this process could not refresh them, or lost by the store); joining them again",
			"users", len(missing), "of", len(holds))
	}
	for _, key := range missing {
		user, ok := t.rejoinUser(key)
		if !ok {
			continue
		}
		if err := t.join(ctx, key, user); err != nil {
			t.logger.Warn("presence: rejoin failed; the next heartbeat tries again", "project", key.Project, "user", key.UserID, "err", err)
			return false
		}
	}
	return true
}

// sweep announces the users of processes that died. It reports whether the
// store answered.
func (t *Tracker) sweep(ctx context.Context, now time.Time) bool {
	gone, err := t.store.Sweep(ctx, now)
	if err != nil {
		t.logger.Warn("presence: sweep failed", "err", err)
		return false
	}
	for _, d := range gone {
		t.announce(ctx, d.Project, "left", d.UserID, d.Name)
	}
	return true
}
