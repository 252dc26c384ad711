package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/relaydev/relay/auth"
)

// Authorize configures the backend authorization hook (RELAY_AUTHORIZE_URL):
// when a token does not cover a channel it asks for, relay asks the app.
type Authorize struct {
	// URL is the app's endpoint; "" turns the hook off (such channels are
	// refused, as without it).
	URL string
	// Timeout bounds one call (default 2 s).
	Timeout time.Duration
	// MaxTTL caps how long an allow is cached, whatever ttl the app
	// answers (default 5 min); a refusal is cached at most
	// maxDenyTTL, so a member just added waits seconds, not minutes.
	MaxTTL time.Duration
}

// Defaults of Authorize.
const (
	DefaultAuthorizeTimeout = 2 * time.Second
	DefaultAuthorizeMaxTTL  = 5 * time.Minute
	// maxDenyTTL caps how long a refusal is cached: long enough that a
	// client retrying in a loop does not hammer the app, short enough
	// that a new member is let in soon.
	maxDenyTTL = 10 * time.Second
	// authorizeCacheSize bounds the cache of answers, per (token,
	// channel): at about 200 bytes an entry, a few MB at most. When full,
	// expired entries go first, then the whole cache (answers are cheap
	// to ask again).
	authorizeCacheSize = 10000
	// maxAuthorizeAnswer bounds the app's answer body.
	maxAuthorizeAnswer = 64 << 10
)

// errBackendUnreachable marks an authorization that failed because the app
// did not answer as it should.
var errBackendUnreachable = errors.New("authorization backend unreachable")

// authorizer asks the app whether a user may read channels, and caches the
// answers per (token, channel).
type authorizer struct {
	cfg    Authorize
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	cache   map[authKey]authEntry
	forgets uint64 // calls of forget so far: an answer asked before one is not cached
}

type authKey struct{ token, channel string }

type authEntry struct {
	user    string
	allow   bool
	name    string
	expires time.Time
}

func newAuthorizer(cfg Authorize, log *slog.Logger) *authorizer {
	if cfg.URL == "" {
		return nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAuthorizeTimeout
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultAuthorizeMaxTTL
	}
	return &authorizer{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, log: log, now: time.Now,
		cache: map[authKey]authEntry{}}
}

// authorizeRequest and authorizeAnswer are the hook's wire format.
type authorizeRequest struct {
	UserID   string   `json:"user_id"`
	Channels []string `json:"channels"`
}

type authorizeAnswer struct {
	Allow []string `json:"allow"`
	TTL   *int     `json:"ttl"`
	Name  string   `json:"name"`
}

// check asks about channels (those id's token does not cover), from the
// cache where it can. It returns the display name the app gave ("" if none)
// or an error wrapping auth.ErrForbidden that says whether the app refused
// or could not be reached.
func (a *authorizer) check(ctx context.Context, token string, id *auth.Identity, channels []string) (string, error) {
	ask, name, gen, err := a.cached(token, id.UserID, channels)
	if err != nil || len(ask) == 0 {
		return name, err
	}
	ans, err := a.call(ctx, token, id.UserID, ask)
	if err != nil {
		a.log.Warn("authorization backend did not answer; refusing the channels", "url", a.cfg.URL, "err", err)
		return "", fmt.Errorf("the app's authorization backend could not be reached to allow channel %s; retry later: %w", ask[0], auth.ErrForbidden)
	}
	a.store(token, id.UserID, ask, ans, gen)
	for _, ch := range ask {
		if !slices.Contains(ans.Allow, ch) {
			return "", fmt.Errorf("the app's authorization backend does not allow this user to read channel %s: %w", ch, auth.ErrForbidden)
		}
	}
	if name == "" {
		name = ans.Name
	}
	return name, nil
}

// cached answers from the cache: the channels still to ask about, a name,
// or a cached refusal; and the count of forgets, for store.
func (a *authorizer) cached(token, user string, channels []string) ([]string, string, uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var ask []string
	name := ""
	for _, ch := range channels {
		e, ok := a.cache[authKey{token, ch}]
		switch {
		case !ok || !now.Before(e.expires) || e.user != user:
			ask = append(ask, ch)
		case !e.allow:
			return nil, "", 0, fmt.Errorf("the app's authorization backend does not allow this user to read channel %s: %w", ch, auth.ErrForbidden)
		default:
			name = e.name
		}
	}
	return ask, name, a.forgets, nil
}

// call POSTs one question to the app.
func (a *authorizer) call(ctx context.Context, token, user string, channels []string) (*authorizeAnswer, error) {
	body, _ := json.Marshal(authorizeRequest{UserID: user, Channels: channels})
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBackendUnreachable, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBackendUnreachable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthorizeAnswer))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %v", errBackendUnreachable, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// The app refuses the token or the user outright: nothing allowed.
		return &authorizeAnswer{}, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: status %d", errBackendUnreachable, resp.StatusCode)
	}
	var ans authorizeAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("%w: answer is not {\"allow\": [...], \"ttl\": N}: %v", errBackendUnreachable, err)
	}
	return &ans, nil
}

// store caches an answer: allows for min(ttl, MaxTTL), refusals for
// min(ttl, maxDenyTTL). A ttl of 0 caches nothing; no ttl means 60 s. An
// answer asked before a forget (gen is the count when it was asked) is not
// cached: it may be the access a disconnect has just ended.
func (a *authorizer) store(token, user string, channels []string, ans *authorizeAnswer, gen uint64) {
	ttl := 60 * time.Second
	if ans.TTL != nil {
		ttl = time.Duration(max(*ans.TTL, 0)) * time.Second
	}
	if ttl == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.forgets != gen {
		return
	}
	now := a.now()
	if len(a.cache)+len(channels) > authorizeCacheSize {
		a.sweep(now)
	}
	for _, ch := range channels {
		allow := slices.Contains(ans.Allow, ch)
		life := min(ttl, a.cfg.MaxTTL)
		if !allow {
			life = min(ttl, maxDenyTTL)
		}
		a.cache[authKey{token, ch}] = authEntry{user: user, allow: allow, name: ans.Name, expires: now.Add(life)}
	}
}

// sweep drops expired entries, and everything if that is not enough.
// Called with a.mu held.
func (a *authorizer) sweep(now time.Time) {
	for k, e := range a.cache {
		if !now.Before(e.expires) {
			delete(a.cache, k)
		}
	}
	if len(a.cache) >= authorizeCacheSize/2 {
		clear(a.cache)
	}
}

// forget drops user's cached answers: for channels, or all when channels is
// empty (POST /api/disconnect).
func (a *authorizer) forget(user string, channels []string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgets++
	for k, e := range a.cache {
		if e.user == user && (len(channels) == 0 || slices.Contains(channels, k.channel)) {
			delete(a.cache, k)
		}
	}
}

// size is the number of cached answers, for tests.
func (a *authorizer) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cache)
}
