package store

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
)

var _ events.Presence = (*RedisPresence)(nil)

var (
	//go:embed redis_presence_join.lua
	luaPresenceJoin string
	//go:embed redis_presence_leave.lua
	luaPresenceLeave string
	//go:embed redis_presence_set.lua
	luaPresenceSet string
	//go:embed redis_presence_sweep.lua
	luaPresenceSweep string

	scriptPresenceJoin  = redis.NewScript(luaPresenceJoin)
	scriptPresenceLeave = redis.NewScript(luaPresenceLeave)
	scriptPresenceSet   = redis.NewScript(luaPresenceSet)
	scriptPresenceSweep = redis.NewScript(luaPresenceSweep)
)

// holdSep separates the parts of a hold member and of a count field. Project,
// user and instance ids are [A-Za-z0-9-] (events.ValidateID), and the
// methods refuse ids that contain it.
const holdSep = "\x1f"

// sweepBatch is how many expired holds one sweep script removes at most, so
// that no script holds Redis for long; Sweep calls it again while there are
// more, up to sweepRounds times (the rest waits for the next Sweep).
const (
	sweepBatch  = 500
	sweepRounds = 20
)

// RedisPresence is an events.Presence in Redis, shared by every relay process
// using the same Redis and prefix. Get it from Redis.Presence.
//
// Every key carries the hash tag {presence}, so each script is atomic across
// all projects; on Redis Cluster, presence therefore lives on one node:
//   - "<prefix>{presence}:holds", a sorted set: member
//     "<project>\x1f<user>\x1f<instance>", score the hold's expiry (unix ms);
//   - "<prefix>{presence}:n", a hash: "<project>\x1f<user>" -> how many holds
//     the user has (so join and leave know first and last in O(log n));
//   - "<prefix>{presence}:u:<project>", a hash: user id -> JSON state
//     {"name", "viewing", "typing", "typing_until_ms"}, numbers as strings.
//
// A user has state exactly while it has holds. Times come from the callers'
// now and expires, not from Redis's clock: processes' clocks must roughly
// agree (by less than the hold lifetime).
type RedisPresence struct {
	r *Redis
}

// Presence returns the presence kept in r's Redis under r's prefix.
func (r *Redis) Presence() *RedisPresence { return &RedisPresence{r: r} }

func (p *RedisPresence) holdsKey() string  { return p.r.prefix + "{presence}:holds" }
func (p *RedisPresence) countsKey() string { return p.r.prefix + "{presence}:n" }
func (p *RedisPresence) stateKey(project string) string {
	return p.r.prefix + "{presence}:u:" + project
}

// checkIDs refuses ids that would make ambiguous members.
func checkIDs(op string, ids ...string) error {
	for _, id := range ids {
		if id == "" || strings.Contains(id, holdSep) {
			return fmt.Errorf("store: presence %s: id %q is empty or contains \\x1f: %w", op, id, events.ErrInvalid)
		}
	}
	return nil
}

// Join records instance's hold on user in project; see events.Presence.
func (p *RedisPresence) Join(ctx context.Context, project string, user events.PresenceUser, instance string, expires time.Time) (bool, error) {
	if err := checkIDs("join", project, user.UserID, instance); err != nil {
		return false, err
	}
	keys := []string{p.holdsKey(), p.countsKey(), p.stateKey(project)}
	first, err := scriptPresenceJoin.Run(ctx, p.r.client, keys, project+holdSep+user.UserID+holdSep+instance,
		expires.UnixMilli(), project+holdSep+user.UserID, user.UserID, user.Name, ticketText(user.Viewing)).Int()
	if err != nil {
		return false, p.r.fail("presence join", err)
	}
	return first == 1, nil
}

// Leave removes instance's hold on userID in project; see events.Presence.
func (p *RedisPresence) Leave(ctx context.Context, project, userID, instance string) (bool, error) {
	if err := checkIDs("leave", project, userID, instance); err != nil {
		return false, err
	}
	keys := []string{p.holdsKey(), p.countsKey(), p.stateKey(project)}
	last, err := scriptPresenceLeave.Run(ctx, p.r.client, keys, project+holdSep+userID+holdSep+instance,
		project+holdSep+userID, userID).Int()
	if err != nil {
		return false, p.r.fail("presence leave", err)
	}
	return last == 1, nil
}

// Refresh extends instance's holds to expires and returns those that are not
// there; see events.Presence. One ZADD XX CH, whatever their number, when
// it changed every hold: one command per heartbeat per process. When it
// changed fewer (some are missing, or were at this expiry already), one
// ZMSCORE tells which are missing. A missing hold is not made again: Join
// makes it, and announces the user if no process holds them.
func (p *RedisPresence) Refresh(ctx context.Context, instance string, holds []events.PresenceHold, expires time.Time) ([]events.PresenceHold, error) {
	if len(holds) == 0 {
		return nil, nil
	}
	if err := checkIDs("refresh", instance); err != nil {
		return nil, err
	}
	score := float64(expires.UnixMilli())
	members := make([]redis.Z, len(holds))
	for i, h := range holds {
		if err := checkIDs("refresh", h.Project, h.UserID); err != nil {
			return nil, err
		}
		members[i] = redis.Z{Score: score, Member: h.Project + holdSep + h.UserID + holdSep + instance}
	}
	changed, err := p.r.client.ZAddArgs(ctx, p.holdsKey(), redis.ZAddArgs{XX: true, Ch: true, Members: members}).Result()
	if err != nil {
		return nil, p.r.fail("presence refresh", err)
	}
	if changed == int64(len(members)) {
		return nil, nil
	}
	return p.missing(ctx, holds, members)
}

// missing returns the holds whose members are not in the holds set, with one
// ZMSCORE (nil for a member that is not there; go-redis's ZMScore would say 0).
func (p *RedisPresence) missing(ctx context.Context, holds []events.PresenceHold, members []redis.Z) ([]events.PresenceHold, error) {
	args := make([]any, 0, 2+len(members))
	args = append(args, "zmscore", p.holdsKey())
	for _, m := range members {
		args = append(args, m.Member)
	}
	scores, err := p.r.client.Do(ctx, args...).Slice()
	if err != nil {
		return nil, p.r.fail("presence refresh", err)
	}
	if len(scores) != len(holds) {
		return nil, fmt.Errorf("store: presence refresh: ZMSCORE answered %d scores for %d holds", len(scores), len(holds))
	}
	var out []events.PresenceHold
	for i, s := range scores {
		if s == nil {
			out = append(out, holds[i])
		}
	}
	return out, nil
}

// Sweep removes holds that expired before now and returns the departures;
// see events.Presence. Each round reads the first expired holds, then runs
// the sweep script with the state keys of their projects (a script must be
// given every key it touches); the script reads them again, so concurrent
// sweeps each remove, and report, different holds. When nothing expired,
// Sweep costs one ZRANGEBYSCORE.
func (p *RedisPresence) Sweep(ctx context.Context, now time.Time) ([]events.Departure, error) {
	before := "(" + strconv.FormatInt(now.UnixMilli(), 10) // exclusive
	var out []events.Departure
	for range sweepRounds {
		expired, err := p.r.client.ZRangeByScore(ctx, p.holdsKey(), &redis.ZRangeBy{Min: "-inf", Max: before, Count: sweepBatch}).Result()
		if err != nil {
			return out, p.r.fail("presence sweep", err)
		}
		if len(expired) == 0 {
			break
		}
		keys := []string{p.holdsKey(), p.countsKey()}
		args := []any{now.UnixMilli(), sweepBatch}
		seen := make(map[string]bool)
		for _, m := range expired {
			project, _, ok := strings.Cut(m, holdSep)
			if ok && !seen[project] {
				seen[project] = true
				keys = append(keys, p.stateKey(project))
				args = append(args, project)
			}
		}
		res, err := scriptPresenceSweep.Run(ctx, p.r.client, keys, args...).Slice()
		if err != nil {
			return out, p.r.fail("presence sweep", err)
		}
		for i := 0; i+2 < len(res); i += 3 {
			project, _ := res[i].(string)
			user, _ := res[i+1].(string)
			name, _ := res[i+2].(string)
			out = append(out, events.Departure{Project: project, UserID: user, Name: name})
		}
		if len(expired) < sweepBatch {
			break
		}
	}
	slices.SortFunc(out, func(a, b events.Departure) int {
		return cmp.Or(strings.Compare(a.Project, b.Project), strings.Compare(a.UserID, b.UserID))
	})
	return out, nil
}

// SetViewing sets the ticket userID views; a user not held is ignored.
func (p *RedisPresence) SetViewing(ctx context.Context, project, userID string, ticket *int64) error {
	return p.set(ctx, "viewing", project, userID, "viewing", ticketText(ticket))
}

// SetTyping sets the ticket userID types in until until; a user not held is
// ignored.
func (p *RedisPresence) SetTyping(ctx context.Context, project, userID string, ticket *int64, until time.Time) error {
	untilText := ""
	if ticket != nil {
		untilText = strconv.FormatInt(until.UnixMilli(), 10)
	}
	return p.set(ctx, "typing", project, userID, "typing", ticketText(ticket), "typing_until_ms", untilText)
}

func (p *RedisPresence) set(ctx context.Context, op, project, userID string, kv ...string) error {
	if err := checkIDs(op, project, userID); err != nil {
		return err
	}
	args := []any{userID}
	for _, s := range kv {
		args = append(args, s)
	}
	if err := scriptPresenceSet.Run(ctx, p.r.client, []string{p.stateKey(project)}, args...).Err(); err != nil {
		return p.r.fail("presence "+op, err)
	}
	return nil
}

func ticketText(t *int64) string {
	if t == nil {
		return ""
	}
	return strconv.FormatInt(*t, 10)
}

// presenceState is a user's state as the scripts store it (cjson would round
// numbers beyond 2^53 and print large ones in exponent form, so they are
// strings).
type presenceState struct {
	Name        string `json:"name"`
	Viewing     string `json:"viewing"`
	Typing      string `json:"typing"`
	TypingUntil string `json:"typing_until_ms"`
}

// Users returns the users held in project (one HGETALL), by user id, typing
// that ended before now cleared.
func (p *RedisPresence) Users(ctx context.Context, project string, now time.Time) ([]events.PresenceUser, error) {
	states, err := p.r.client.HGetAll(ctx, p.stateKey(project)).Result()
	if err != nil {
		return nil, p.r.fail("presence users", err)
	}
	out := make([]events.PresenceUser, 0, len(states))
	for id, raw := range states {
		var s presenceState
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return nil, fmt.Errorf("store: presence users: state of %s in %s: %w", id, project, err)
		}
		u := events.PresenceUser{UserID: id, Name: s.Name, Viewing: parseTicket(s.Viewing)}
		if until, err := strconv.ParseInt(s.TypingUntil, 10, 64); err == nil && until >= now.UnixMilli() {
			u.Typing, u.TypingUntil = parseTicket(s.Typing), time.UnixMilli(until)
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b events.PresenceUser) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

func parseTicket(s string) *int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil
	}
	return &v
}
