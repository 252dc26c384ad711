package transport

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound what one client may take from a relay process; zero fields
// take the defaults below. They are per process: behind a load balancer each
// relay counts its own streams. The defaults are generous enough for real
// pages (a page is one multiplexed connection; a user has several tabs and
// devices; an office shares one NAT address, hence the per-IP limits far
// above the per-user ones) and stop one token or one address from taking a
// machine.
type Limits struct {
	// ConnsPerUser is how many streams one user may hold open (default 100).
	ConnsPerUser int
	// ConnsPerIP is how many streams one client address may hold open
	// (default 2000). IPv6 addresses count by their /64, which is what one
	// household or office is given.
	ConnsPerIP int
	// ConnectRate and ConnectBurst bound how fast one address may open
	// streams: ConnectRate a second, with bursts of ConnectBurst (defaults 50
	// and 500, so a whole office reconnecting after a deploy gets back in).
	ConnectRate, ConnectBurst int
	// ActionRate and ActionBurst bound the messages one WebSocket connection
	// may send (typing, viewing, mark_read, ping, anything): ActionRate a
	// second, bursts of ActionBurst (defaults 10 and 20).
	ActionRate, ActionBurst int
	// UserActionRate and UserActionBurst bound one user's typing, viewing,
	// mark_read and ping across all their connections and the HTTP action
	// endpoints (defaults 20 and 50).
	UserActionRate, UserActionBurst int
	// ActionHardLimit is how many refused messages a connection may send
	// before it is closed with 4029: refusals draw from an allowance of that
	// many that refills at ActionRate, so a client that slightly exceeds the
	// rate is only told so, and one that floods is cut off (default 100).
	ActionHardLimit int
	// TypingRepeat: a user's typing state repeated unchanged within this long
	// of the last one applied is not applied again (not re-broadcast, no
	// store call). Keep it well under the typing timeout, which the repeats
	// refresh (default 2 s; relay sets a third of RELAY_TYPING_TIMEOUT).
	TypingRepeat time.Duration
	// TrustProxyHeader names a header that carries the client's address,
	// set by a proxy in front of relay (Fly: "Fly-Client-IP"). Unset, the
	// peer address is the client's. Set it only when every request comes
	// through that proxy: anyone else can write the header.
	TrustProxyHeader string
	// BodyTimeout bounds how long a request body (publish, mark read,
	// presence actions) may take to arrive (default 10 s); a slower one is
	// answered 408 and its connection closed. Streams have no body deadline.
	BodyTimeout time.Duration
}

// Defaults for Limits.
const (
	DefaultConnsPerUser    = 100
	DefaultConnsPerIP      = 2000
	DefaultConnectRate     = 50
	DefaultConnectBurst    = 500
	DefaultActionRate      = 10
	DefaultActionBurst     = 20
	DefaultUserActionRate  = 20
	DefaultUserActionBurst = 50
	DefaultActionHardLimit = 100
	DefaultTypingRepeat    = 2 * time.Second
	DefaultBodyTimeout     = 10 * time.Second
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ConnsPerUser, DefaultConnsPerUser)
	def(&l.ConnsPerIP, DefaultConnsPerIP)
	def(&l.ConnectRate, DefaultConnectRate)
	def(&l.ConnectBurst, DefaultConnectBurst)
	def(&l.ActionRate, DefaultActionRate)
	def(&l.ActionBurst, DefaultActionBurst)
	def(&l.UserActionRate, DefaultUserActionRate)
	def(&l.UserActionBurst, DefaultUserActionBurst)
	def(&l.ActionHardLimit, DefaultActionHardLimit)
	if l.TypingRepeat <= 0 {
		l.TypingRepeat = DefaultTypingRepeat
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	return l
}

// The refusals of the limits: 429, close 4029.
var (
	ErrRateLimited        = errors.New("rate limited")
	ErrTooManyConnections = errors.New("too many connections")
)

// limitError is a refusal with the time after which a retry may succeed,
// sent as Retry-After.
type limitError struct {
	err   error
	retry time.Duration
}

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// retryAfter is the Retry-After value of err, in whole seconds (at least 1);
// "" when err says nothing of when to retry.
func retryAfter(err error) string {
	var le *limitError
	if !errors.As(err, &le) || le.retry <= 0 {
		return ""
	}
	return fmt.Sprint(max(1, int(math.Ceil(le.retry.Seconds()))))
}

// maxKeys bounds each table of quotas. Idle keys are forgotten; past this
// many keys with streams open or buckets in use, a new address or user is
// refused rather than remembered.
const maxKeys = 100_000

// sweepEvery is how often a table forgets its idle keys at the least; it
// also sweeps whenever it has doubled since the last sweep.
const sweepEvery = time.Minute

// quota is one key's share: its open streams and its token bucket.
type quota struct {
	conns  int
	bucket *rate.Limiter
	typing map[string]typingState // by project; users only
}

// typingState is the last typing state of a user that was applied.
type typingState struct {
	ticket int64
	on     bool
	at     time.Time
}

// quotas holds the quotas of one kind of key (user ids, client addresses).
// A key with no open stream and a full bucket is the same as no entry, so it
// is forgotten: the table holds only keys in use.
type quotas struct {
	max     int // open streams per key
	limit   rate.Limit
	burst   int
	m       map[string]*quota
	swept   time.Time
	sweepAt int // size at which the next sweep happens regardless of time
}

func newQuotas(maxConns, perSecond, burst int) *quotas {
	return &quotas{max: maxConns, limit: rate.Limit(perSecond), burst: burst, m: map[string]*quota{}, sweepAt: 1024}
}

// get returns key's quota, making it; nil when the table is full.
func (q *quotas) get(key string, now time.Time) *quota {
	if e := q.m[key]; e != nil {
		return e
	}
	if now.Sub(q.swept) > sweepEvery || len(q.m) >= q.sweepAt || len(q.m) >= maxKeys {
		q.sweep(now)
	}
	if len(q.m) >= maxKeys {
		return nil
	}
	e := &quota{bucket: rate.NewLimiter(q.limit, q.burst)}
	q.m[key] = e
	return e
}

// sweep forgets the keys that are idle: no stream, a full bucket.
func (q *quotas) sweep(now time.Time) {
	for k, e := range q.m {
		if e.conns == 0 && e.bucket.TokensAt(now) >= float64(q.burst) {
			delete(q.m, k)
		}
	}
	q.swept = now
	q.sweepAt = max(1024, 2*len(q.m))
}

// wait is how long until key's bucket has a token again.
func (q *quotas) wait(e *quota, now time.Time) time.Duration {
	missing := 1 - e.bucket.TokensAt(now)
	return time.Duration(missing / float64(q.limit) * float64(time.Second))
}

// limiter is a server's limits in force: one lock over both tables, held
// for map and count changes only (buckets lock themselves).
type limiter struct {
	cfg   Limits
	mu    sync.Mutex
	users *quotas // streams per user; the bucket is the user's actions
	ips   *quotas // streams per address; the bucket is the connect rate
	now   func() time.Time
}

func newLimiter(cfg Limits) *limiter {
	return &limiter{cfg: cfg, now: time.Now,
		users: newQuotas(cfg.ConnsPerUser, cfg.UserActionRate, cfg.UserActionBurst),
		ips:   newQuotas(cfg.ConnsPerIP, cfg.ConnectRate, cfg.ConnectBurst)}
}

var errTooManyClients = &limitError{fmt.Errorf("relay is tracking too many clients right now; retry shortly: %w", ErrRateLimited), time.Second}

// connectAttempt takes one of ip's connect tokens: every stream request
// does, before its token is checked, so refused attempts count too.
func (l *limiter) connectAttempt(ip string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.ips.get(ip, now)
	if e == nil {
		return errTooManyClients
	}
	if !e.bucket.AllowN(now, 1) {
		return &limitError{fmt.Errorf("too many new connections from your address (more than %d a second); retry after the Retry-After delay with your last event id: %w",
			l.cfg.ConnectRate, ErrRateLimited), l.ips.wait(e, now)}
	}
	return nil
}

// admit counts a stream of user from ip, or refuses it when either holds
// as many as it may. The count and the check are one step, so concurrent
// connects cannot overshoot. release uncounts it, once.
func (l *limiter) admit(user, ip string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.full(user, ip); err != nil {
		return nil, err
	}
	now := l.now()
	u, a := l.users.get(user, now), l.ips.get(ip, now)
	if u == nil || a == nil {
		return nil, errTooManyClients
	}
	u.conns++
	a.conns++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			u.conns--
			a.conns--
		})
	}, nil
}

// full reports, as the refusal to send, whether user or ip holds as many
// streams as it may. l.mu is held.
func (l *limiter) full(user, ip string) error {
	if e := l.users.m[user]; e != nil && e.conns >= l.users.max {
		return &limitError{fmt.Errorf("this user has %d streams open, the most relay allows (RELAY_MAX_CONNS_PER_USER); close one, or put a page's channels on one connection with /events?channel=…: %w",
			e.conns, ErrTooManyConnections), 0}
	}
	if e := l.ips.m[ip]; e != nil && e.conns >= l.ips.max {
		return &limitError{fmt.Errorf("your address has %d streams open, the most relay allows (RELAY_MAX_CONNS_PER_IP); close one: %w",
			e.conns, ErrTooManyConnections), 0}
	}
	return nil
}

// peek reports the refusal a stream of user from ip would get now, without
// taking anything: the access check (Accept: application/json) answers it.
func (l *limiter) peek(user, ip string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.ips.m[ip]; e != nil && e.bucket.TokensAt(l.now()) < 1 {
		return &limitError{fmt.Errorf("too many new connections from your address; retry after the Retry-After delay: %w", ErrRateLimited), l.ips.wait(e, l.now())}
	}
	return l.full(user, ip)
}

// user returns user's quota for actions; nil when the table is full.
func (l *limiter) user(user string) *quota {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.users.get(user, l.now())
}

// userAction takes one of the user's action tokens (HTTP actions, and
// WebSocket actions through their connection's quota pointer).
func (l *limiter) userAction(u *quota) error {
	now := l.now()
	if u == nil {
		return errTooManyClients
	}
	if u.bucket.AllowN(now, 1) {
		return nil
	}
	return &limitError{fmt.Errorf("too many actions from this user (more than %d a second); slow down: %w",
		l.cfg.UserActionRate, ErrRateLimited), l.users.wait(u, now)}
}

// typingRepeat reports whether the typing state is the one last applied for
// user in project, less than TypingRepeat ago: then it need not be applied.
func (l *limiter) typingRepeat(user, project string, ticket int64, on bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.users.m[user]
	if e == nil {
		return false
	}
	last, ok := e.typing[project]
	return ok && last.ticket == ticket && last.on == on && l.now().Sub(last.at) < l.cfg.TypingRepeat
}

// typingApplied records the typing state just applied for user in project.
func (l *limiter) typingApplied(user, project string, ticket int64, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.users.get(user, l.now())
	if e == nil {
		return
	}
	if e.typing == nil {
		e.typing = map[string]typingState{}
	}
	e.typing[project] = typingState{ticket: ticket, on: on, at: l.now()}
}

// counts are the streams user and ip hold open, and the addresses tracked
// after a sweep of the idle ones: for tests.
func (l *limiter) counts(user, ip string) (users, ips, tracked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.users.m[user]; e != nil {
		users = e.conns
	}
	if e := l.ips.m[ip]; e != nil {
		ips = e.conns
	}
	l.ips.sweep(l.now())
	return users, ips, len(l.ips.m)
}

// clientIP is the key of the request's client address: the trusted proxy
// header's when configured and present (its last value: what the nearest
// proxy saw), else the peer's. IPv6 addresses count by their /64.
func clientIP(r *http.Request, trusted string) string {
	if trusted != "" {
		if vals := r.Header.Values(trusted); len(vals) > 0 {
			v := vals[len(vals)-1]
			if i := strings.LastIndexByte(v, ','); i >= 0 {
				v = v[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
				return addrKey(a)
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	return addrKey(a)
}

func addrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// connQuota limits one WebSocket connection's messages.
type connQuota struct {
	lim    *limiter
	bucket *rate.Limiter // every message
	hard   *rate.Limiter // refused messages: empty, the connection is closed
	user   *quota        // the user's actions; held while the stream counts the user
}

func (l *limiter) conn(user string) *connQuota {
	return &connQuota{lim: l, user: l.user(user),
		bucket: rate.NewLimiter(rate.Limit(l.cfg.ActionRate), l.cfg.ActionBurst),
		hard:   rate.NewLimiter(rate.Limit(l.cfg.ActionRate), l.cfg.ActionHardLimit)}
}

// errFlood closes a connection that goes on sending past its limit.
var errFlood = fmt.Errorf("rate limited: this connection sent far more messages than allowed; reconnect and slow down: %w", ErrRateLimited)

// allow takes a message of type typ from the connection's bucket, and for a
// user action from the user's: nil, a rate_limited refusal to answer, or
// errFlood when the connection is to be closed.
func (c *connQuota) allow(typ string) error {
	now := c.lim.now()
	var err error
	if !c.bucket.AllowN(now, 1) {
		err = &limitError{fmt.Errorf("too many messages on this connection (more than %d a second); this one was dropped: %w",
			c.lim.cfg.ActionRate, ErrRateLimited), 0}
	} else if userAction(typ) {
		err = c.lim.userAction(c.user)
	}
	if err != nil && !c.hard.AllowN(now, 1) {
		return errFlood
	}
	return err
}

// userAction reports whether a client message of type typ counts against
// the user's action rate.
func userAction(typ string) bool {
	switch typ {
	case "typing", "viewing", "mark_read", "ping":
		return true
	}
	return false
}
