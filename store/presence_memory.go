package store

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/relaydev/relay/events"
)

var _ events.Presence = (*MemoryPresence)(nil)

// MemoryPresence is an events.Presence held in this process's memory, for a
// relay process that shares nothing: every hold is its own, so Sweep only
// matters for holds a caller forgot to refresh.
type MemoryPresence struct {
	mu       sync.Mutex
	projects map[string]map[string]*memPresence // project -> user id -> user
}

// memPresence is one held user: its state and which instances hold it until
// when.
type memPresence struct {
	user  events.PresenceUser
	holds map[string]time.Time // instance -> expires
}

// NewMemoryPresence returns an empty memory presence.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{projects: make(map[string]map[string]*memPresence)}
}

// Join records instance's hold on user in project; see events.Presence.
func (p *MemoryPresence) Join(ctx context.Context, project string, user events.PresenceUser, instance string, expires time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.projects[project]
	if users == nil {
		users = make(map[string]*memPresence)
		p.projects[project] = users
	}
	u := users[user.UserID]
	first := u == nil
	if first {
		u = &memPresence{user: events.PresenceUser{UserID: user.UserID}, holds: make(map[string]time.Time)}
		users[user.UserID] = u
	}
	u.user.Name = user.Name
	if user.Viewing != nil {
		u.user.Viewing = clonePtr(user.Viewing)
	}
	u.holds[instance] = expires
	return first, nil
}

// Leave removes instance's hold on userID in project; see events.Presence.
func (p *MemoryPresence) Leave(ctx context.Context, project, userID, instance string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.projects[project][userID]
	if u == nil {
		return false, nil
	}
	if _, ok := u.holds[instance]; !ok {
		return false, nil // swept already: the sweeper announced the departure
	}
	delete(u.holds, instance)
	if len(u.holds) > 0 {
		return false, nil
	}
	p.remove(project, userID)
	return true, nil
}

// remove forgets a user no instance holds. p.mu must be held.
func (p *MemoryPresence) remove(project, userID string) {
	delete(p.projects[project], userID)
	if len(p.projects[project]) == 0 {
		delete(p.projects, project)
	}
}

// Refresh extends instance's existing holds to expires and returns those
// that are not there. A hold swept meanwhile is not made again (its departure
// was announced), as in Redis: the caller joins it again.
func (p *MemoryPresence) Refresh(ctx context.Context, instance string, holds []events.PresenceHold, expires time.Time) ([]events.PresenceHold, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var missing []events.PresenceHold
	for _, h := range holds {
		u := p.projects[h.Project][h.UserID]
		if _, ok := u.holdOf(instance); !ok {
			missing = append(missing, h)
			continue
		}
		u.holds[instance] = expires
	}
	return missing, nil
}

// holdOf returns when instance's hold on u expires, if u (possibly nil) has
// one.
func (u *memPresence) holdOf(instance string) (time.Time, bool) {
	if u == nil {
		return time.Time{}, false
	}
	exp, ok := u.holds[instance]
	return exp, ok
}

// Sweep removes holds that expired before now; see events.Presence.
func (p *MemoryPresence) Sweep(ctx context.Context, now time.Time) ([]events.Departure, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []events.Departure
	for project, users := range p.projects {
		for id, u := range users {
			for instance, expires := range u.holds {
				if expires.Before(now) {
					delete(u.holds, instance)
				}
			}
			if len(u.holds) == 0 {
				out = append(out, events.Departure{Project: project, UserID: id, Name: u.user.Name})
				p.remove(project, id)
			}
		}
	}
	slices.SortFunc(out, func(a, b events.Departure) int {
		return cmp.Or(strings.Compare(a.Project, b.Project), strings.Compare(a.UserID, b.UserID))
	})
	return out, nil
}

// SetViewing sets the ticket userID views; a user not held is ignored.
func (p *MemoryPresence) SetViewing(ctx context.Context, project, userID string, ticket *int64) error {
	return p.update(ctx, project, userID, func(u *events.PresenceUser) { u.Viewing = clonePtr(ticket) })
}

// SetTyping sets the ticket userID types in until until; a user not held is
// ignored.
func (p *MemoryPresence) SetTyping(ctx context.Context, project, userID string, ticket *int64, until time.Time) error {
	return p.update(ctx, project, userID, func(u *events.PresenceUser) {
		u.Typing, u.TypingUntil = clonePtr(ticket), until
		if ticket == nil {
			u.TypingUntil = time.Time{}
		}
	})
}

func (p *MemoryPresence) update(ctx context.Context, project, userID string, f func(*events.PresenceUser)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.projects[project][userID]; u != nil {
		f(&u.user)
	}
	return nil
}

// Users returns the users held in project, by user id, typing that ended
// before now cleared.
func (p *MemoryPresence) Users(ctx context.Context, project string, now time.Time) ([]events.PresenceUser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	out := make([]events.PresenceUser, 0, len(p.projects[project]))
	for _, u := range p.projects[project] {
		v := u.user
		v.Viewing, v.Typing = clonePtr(v.Viewing), clonePtr(v.Typing) // callers may keep them
		if v.Typing != nil && v.TypingUntil.Before(now) {
			v.Typing, v.TypingUntil = nil, time.Time{}
		}
		out = append(out, v)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b events.PresenceUser) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

func clonePtr(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
