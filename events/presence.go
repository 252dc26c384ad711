package events

import (
	"context"
	"time"
)

// PresenceUser is one user online in a project, as presence_state lists it.
type PresenceUser struct {
	UserID string `json:"user_id"`
	Name   string `json:"username"`
	// Viewing is the ticket the user views, or nil.
	Viewing *int64 `json:"viewing"`
	// Typing is the ticket the user is typing in, or nil; TypingUntil is
	// when that ends without a refresh.
	Typing      *int64    `json:"typing"`
	TypingUntil time.Time `json:"-"`
}

// PresencePage is one page of the users online in a project, ordered by
// user id: presence_state's users, or an answer of GET
// /api/projects/{id}/presence.
type PresencePage struct {
	Users []PresenceUser `json:"users"`
	// Count is how many users are online in the project, on every page.
	Count int `json:"count"`
	// More is set when users after the last of Users are online: ask again
	// with after set to its user id.
	More bool `json:"more"`
}

// PresenceHold is one process's claim that a user is online in a project.
type PresenceHold struct {
	Project string
	UserID  string
}

// Departure is a user no process holds any more in a project.
type Departure struct {
	Project string
	UserID  string
	Name    string
}

// Presence keeps who is online where, shared by every relay process using
// the same store. Each process (instance) holds the users connected to it;
// a hold expires unless refreshed, so a process that dies leaves no ghosts.
// store.Memory and store.Redis implement it; storetest holds its suite.
type Presence interface {
	// Join records that instance holds user in project until expires, and
	// sets the user's name, and the ticket they view when user.Viewing is not
	// nil (nil leaves it as it is: a second tab knows nothing of the first's
	// view). first reports that no instance held the user in project before:
	// the caller announces the join. Atomic.
	Join(ctx context.Context, project string, user PresenceUser, instance string, expires time.Time) (first bool, err error)

	// Leave removes instance's hold on userID in project. last reports that
	// no instance holds the user there any more: the user's state is removed
	// and the caller announces the departure. Atomic.
	Leave(ctx context.Context, project, userID, instance string) (last bool, err error)

	// Refresh extends instance's holds to expires, in one round trip when
	// all of them are there, and returns those that are not, in the order
	// given: swept by another process while this one could not refresh them
	// (its departure announced), or lost by the store (Redis restarted
	// empty). It does not make them again; the caller joins them again, so
	// that a user no process holds any more is announced again.
	Refresh(ctx context.Context, instance string, holds []PresenceHold, expires time.Time) (missing []PresenceHold, err error)

	// Sweep removes every hold that expired before now (its process died)
	// and returns the users no instance holds any more, removing their
	// state. Each departure is returned to exactly one caller, even when
	// several processes sweep at once.
	Sweep(ctx context.Context, now time.Time) ([]Departure, error)

	// SetViewing sets (nil: clears) the ticket userID views in project.
	SetViewing(ctx context.Context, project, userID string, ticket *int64) error

	// SetTyping sets the ticket userID types in, until until; nil clears it.
	SetTyping(ctx context.Context, project, userID string, ticket *int64, until time.Time) error

	// Users returns the users held in project, ordered by user id, with
	// typing that ended before now cleared.
	Users(ctx context.Context, project string, now time.Time) ([]PresenceUser, error)
}

// Broadcaster is implemented by logs that can send an ephemeral event to
// every process's Watch without storing it (typing and viewing). Ephemeral
// events have no position and are never replayed.
type Broadcaster interface {
	Broadcast(ctx context.Context, ev *Event) error
}
