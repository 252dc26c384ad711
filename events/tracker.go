package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// PresenceConfig tunes a Tracker; zero fields take the defaults.
type PresenceConfig struct {
	// Grace is how long a user stays online after their last connection
	// closes, so a reload or a reconnect does not flap left/joined.
	Grace time.Duration
	// TypingTimeout ends typing that is not refreshed.
	TypingTimeout time.Duration
	// HoldTTL is how long a process's claim on its users lasts unless
	// refreshed; a process that dies has its users announced as left by the
	// others within HoldTTL plus a third of it (a third more when the others
	// could not reach the store just before). A process that could not
	// refresh for longer has its swept users joined again, and announced
	// joined, by its first heartbeat once the store answers.
	HoldTTL time.Duration
}

// Presence defaults.
const (
	DefaultPresenceGrace = 5 * time.Second
	DefaultTypingTimeout = 6 * time.Second
	DefaultHoldTTL       = 30 * time.Second
)

// The bounds of presence_state and of the pages of GET
// /api/projects/{id}/presence.
const (
	// PresenceStateMaxUsers is how many users presence_state lists at most,
	// the first by user id; past it the state says more and clients page
	// over HTTP. The state goes to every connection that opens a presence
	// channel, at every connect and reconnect (a deploy reconnects a whole
	// project at once), so it stays small: 100 users is a whole project for
	// most, about 21 KiB with 150-character names.
	PresenceStateMaxUsers = 100
	// PresenceStateMaxBytes bounds presence_state's users in bytes as well:
	// names come from tokens, which bound them only loosely.
	PresenceStateMaxBytes = 32 << 10
	// DefaultPresencePage is the size of a page of users when none is asked
	// for; MaxPresencePage the largest (about 220 KiB with 150-character
	// names): a client reads 10,000 users online in 10 requests.
	DefaultPresencePage = 200
	MaxPresencePage     = 1000
)

func (c PresenceConfig) withDefaults() PresenceConfig {
	if c.Grace <= 0 {
		c.Grace = DefaultPresenceGrace
	}
	if c.TypingTimeout <= 0 {
		c.TypingTimeout = DefaultTypingTimeout
	}
	if c.HoldTTL <= 0 {
		c.HoldTTL = DefaultHoldTTL
	}
	return c
}

// Tracker turns connections into presence: per user, not per connection,
// with a grace period, shared through a Presence store with every process.
// joined/left are published to the project's presence channel (logged and
// replayed); typing and viewing are broadcast (ephemeral).
type Tracker struct {
	hub      *Hub
	store    Presence
	cfg      PresenceConfig
	instance string
	logger   *slog.Logger

	mu     sync.Mutex
	local  map[PresenceHold]*localUser
	typing map[PresenceHold]time.Time // typing set through this process, until

	run     sync.Mutex // guards started and closed
	started bool       // Start ran the loop: Close waits for it
	closed  bool
	stop    chan struct{}
	done    chan struct{} // closed when the loop ends
}

// localUser is a user connected to this process in one project.
type localUser struct {
	name    string
	viewing *int64 // as last set through this process, to join again with
	refs    int
	leaveAt time.Time // when refs is 0: the end of the grace period
}

// NewTracker returns a tracker for this process (a fresh instance id). Start
// runs its loop; Close stops it.
func NewTracker(hub *Hub, store Presence, cfg PresenceConfig, logger *slog.Logger) *Tracker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Tracker{
		hub: hub, store: store, cfg: cfg.withDefaults(), instance: NewEpoch(), logger: logger,
		local: make(map[PresenceHold]*localUser), typing: make(map[PresenceHold]time.Time),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start runs the loop that ends grace periods and typing, refreshes this
// process's holds and sweeps those of dead processes. It is idempotent, and
// does nothing once Close has been called.
func (t *Tracker) Start() {
	t.run.Lock()
	defer t.run.Unlock()
	if t.started || t.closed {
		return
	}
	t.started = true
	go t.loop()
}

// Close stops the loop, if Start ran it, and waits for it. Holds are left to
// expire, so users who reconnect to another process meanwhile are not
// announced as left. It is idempotent.
func (t *Tracker) Close() {
	t.run.Lock()
	if !t.closed {
		t.closed = true
		close(t.stop)
	}
	started := t.started
	t.run.Unlock()
	if started {
		<-t.done
	}
}

// Connect marks userID online in project for as long as the returned release
// is not called (call it once, when the connection ends).
func (t *Tracker) Connect(ctx context.Context, project, userID, name string) (release func(), err error) {
	key := PresenceHold{Project: project, UserID: userID}
	t.mu.Lock()
	lu := t.local[key]
	held := lu != nil // connected here already, or within its grace period
	if !held {
		lu = &localUser{name: name}
		t.local[key] = lu
	}
	lu.refs++
	lu.leaveAt = time.Time{}
	t.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { t.release(key, lu) }) }
	if held {
		return release, nil
	}
	if err := t.join(ctx, key, PresenceUser{UserID: userID, Name: name}); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// join takes this process's hold on a user (with their name, and their view
// when it is known) and announces them when no process held them before.
func (t *Tracker) join(ctx context.Context, key PresenceHold, user PresenceUser) error {
	first, err := t.store.Join(ctx, key.Project, user, t.instance, time.Now().Add(t.cfg.HoldTTL))
	if err != nil {
		return fmt.Errorf("presence: join: %w", err)
	}
	if first {
		t.announce(ctx, key.Project, "joined", key.UserID, user.Name)
	}
	return nil
}

// rejoinUser is what join needs to hold key again, from what this process
// knows; ok is false when the user is no longer connected here.
func (t *Tracker) rejoinUser(key PresenceHold) (user PresenceUser, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	lu := t.local[key]
	if lu == nil {
		return PresenceUser{}, false
	}
	user = PresenceUser{UserID: key.UserID, Name: lu.name}
	if lu.viewing != nil {
		v := *lu.viewing
		user.Viewing = &v
	}
	return user, true
}

func (t *Tracker) release(key PresenceHold, lu *localUser) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if lu.refs--; lu.refs == 0 {
		lu.leaveAt = time.Now().Add(t.cfg.Grace)
	}
}

// announce publishes a user_status event, the shape the app's clients use.
func (t *Tracker) announce(ctx context.Context, project, action, userID, name string) {
	d, err := draft(PresenceChannel(project), "user_status", map[string]any{"action": action, "user_id": userID, "username": name})
	if err == nil {
		_, err = t.hub.Publish(ctx, d)
	}
	if err != nil {
		t.logger.Warn("presence: could not announce "+action, "project", project, "user", userID, "err", err)
	}
}

// Typing records that userID types in ticket (or stopped), and tells the
// project. Typing ends by itself after TypingTimeout without a refresh.
func (t *Tracker) Typing(ctx context.Context, project, userID, name string, ticket int64, on bool) error {
	key := PresenceHold{Project: project, UserID: userID}
	until := time.Now().Add(t.cfg.TypingTimeout)
	var tp *int64
	if on {
		tp = &ticket
	}
	if err := t.store.SetTyping(ctx, project, userID, tp, until); err != nil {
		return fmt.Errorf("presence: typing: %w", err)
	}
	t.mu.Lock()
	if on {
		t.typing[key] = until
	} else {
		delete(t.typing, key)
	}
	t.mu.Unlock()
	return t.broadcast(ctx, project, "typing", map[string]any{"user_id": userID, "username": name, "ticket_id": ticket, "is_typing": on})
}

// Viewing records the ticket userID views (nil: none) and tells the project.
func (t *Tracker) Viewing(ctx context.Context, project, userID, name string, ticket *int64) error {
	if err := t.store.SetViewing(ctx, project, userID, ticket); err != nil {
		return fmt.Errorf("presence: viewing: %w", err)
	}
	t.mu.Lock()
	if lu := t.local[PresenceHold{Project: project, UserID: userID}]; lu != nil {
		lu.viewing = nil
		if ticket != nil {
			v := *ticket
			lu.viewing = &v
		}
	}
	t.mu.Unlock()
	return t.broadcast(ctx, project, "viewing", map[string]any{"user_id": userID, "username": name, "ticket_id": ticket})
}

// Users returns who is online in project now.
func (t *Tracker) Users(ctx context.Context, project string) ([]PresenceUser, error) {
	users, err := t.store.Users(ctx, project, time.Now())
	if err != nil {
		return nil, fmt.Errorf("presence: users: %w", err)
	}
	return users, nil
}

// Page returns the users online in project after the user id after ("":
// from the first), at most limit of them (0: DefaultPresencePage; at most
// MaxPresencePage), ordered by user id as bytes.
func (t *Tracker) Page(ctx context.Context, project, after string, limit int) (PresencePage, error) {
	if limit <= 0 {
		limit = DefaultPresencePage
	}
	users, err := t.Users(ctx, project)
	if err != nil {
		return PresencePage{}, err
	}
	return pageOf(users, after, min(limit, MaxPresencePage)), nil
}

// pageOf is the page of users (ordered by user id) after the id after.
func pageOf(users []PresenceUser, after string, limit int) PresencePage {
	i, found := slices.BinarySearchFunc(users, after, func(u PresenceUser, id string) int { return strings.Compare(u.UserID, id) })
	if found {
		i++
	}
	rest := users[i:]
	page := PresencePage{Users: rest[:min(limit, len(rest))], Count: len(users), More: len(rest) > limit}
	if page.Users == nil {
		page.Users = []PresenceUser{}
	}
	return page
}

// State returns the presence_state message for project: how many users are
// online, the first of them by user id (at most PresenceStateMaxUsers and
// PresenceStateMaxBytes), and more when there are others, which clients
// read with Page.
func (t *Tracker) State(ctx context.Context, project string) (*Event, error) {
	page, err := t.Page(ctx, project, "", PresenceStateMaxUsers)
	if err != nil {
		return nil, err
	}
	users, fit, err := encodeUsers(page.Users, PresenceStateMaxBytes)
	if err != nil {
		return nil, err
	}
	d, err := draft(PresenceChannel(project), "presence_state", map[string]any{
		"project_id": project, "users": users, "count": page.Count, "more": page.More || fit < len(page.Users),
	})
	if err != nil {
		return nil, err
	}
	return NewEphemeral(d, time.Now()), nil
}

// encodeUsers encodes the first users whose JSON list fits in max bytes, and
// says how many that is.
func encodeUsers(users []PresenceUser, max int) (json.RawMessage, int, error) {
	b := append(make([]byte, 0, 256*len(users)), '[')
	for i, u := range users {
		raw, err := json.Marshal(u)
		if err != nil {
			return nil, 0, fmt.Errorf("presence_state: %v: %w", err, ErrInvalid)
		}
		if len(b)+len(raw)+2 > max { // a comma or '[' before, ']' after
			return append(b, ']'), i, nil
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, raw...)
	}
	return append(b, ']'), len(users), nil
}

func (t *Tracker) broadcast(ctx context.Context, project, typ string, fields map[string]any) error {
	d, err := draft(PresenceChannel(project), typ, fields)
	if err != nil {
		return err
	}
	return t.hub.Broadcast(ctx, d)
}

// draft builds one of relay's own messages, with fields at the top level of
// the envelope (never "id", "channel" or "ts"). It is not bound by the
// publishers' payload limit (ParseDraft's): relay's messages are as large as
// what they describe, and presence_state bounds itself.
func draft(channel, typ string, fields map[string]any) (Draft, error) {
	if err := ValidateChannel(channel); err != nil {
		return Draft{}, err
	}
	obj := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		obj[k] = v
	}
	obj["type"] = typ
	raw, err := json.Marshal(obj) // keys sorted, as ParseDraft's
	if err != nil {
		return Draft{}, fmt.Errorf("%s: %v: %w", typ, err, ErrInvalid)
	}
	return Draft{Channel: channel, Type: typ, Fields: raw[1 : len(raw)-1]}, nil
}

// Online returns how many users this process holds online, counted once per
// project they are in (a user in two projects counts twice), grace periods
// included: for metrics.
func (t *Tracker) Online() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.local)
}
