package store

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
)

var (
	_ events.Log          = (*Redis)(nil)
	_ events.Pinger       = (*Redis)(nil)
	_ events.Broadcaster  = (*Redis)(nil)
	_ events.BatchWatcher = (*Redis)(nil)
)

var (
	//go:embed redis_lib.lua
	luaLib string
	//go:embed redis_publish.lua
	luaPublish string
	//go:embed redis_read.lua
	luaRead string
	//go:embed redis_head.lua
	luaHead string

	scriptPublish = redis.NewScript(luaLib + luaPublish)
	scriptRead    = redis.NewScript(luaLib + luaRead)
	scriptHead    = redis.NewScript(luaLib + luaHead)
)

// DefaultRedisPrefix starts every key and Pub/Sub channel relay uses.
const DefaultRedisPrefix = "relay:"

// RedisOptions configure a Redis log. Zero values take the defaults.
type RedisOptions struct {
	// Prefix starts every key and Pub/Sub channel (default "relay:").
	// Processes sharing a log use the same prefix. It may not contain '{' or
	// '}', which would put every channel in one Redis Cluster slot.
	Prefix string
	// Retention bounds each channel's history.
	Retention events.Retention
	// Logger receives Pub/Sub outages and recoveries (default: discarded).
	Logger *slog.Logger
	// IdempotencyWindow is how long a channel remembers an idempotency key
	// (default events.IdempotencyWindow); Redis expires each key after it.
	IdempotencyWindow time.Duration
	// OnReconnect, when set, is called each time a Pub/Sub connection is
	// subscribed again after it was lost (metrics). It must not block.
	OnReconnect func()
	// OnReceive, when set, is called for every message received over
	// Pub/Sub, before it is parsed: the events this process is sent (metrics,
	// the cluster bench). It must be cheap and never block.
	OnReceive func()
}

// Redis is an events.Log on Redis Streams, shared by every relay process
// using the same Redis and prefix.
//
// Each channel has two keys in one Cluster hash slot: the stream
// "<prefix>{<channel>}:s", entries "<seq>-0" with fields d (fields), t (time,
// unix ms from Redis's clock) and y (type); and the hash "<prefix>{<channel>}:m",
// fields e (epoch), s (newest seq), t (newest time), r (the run_id of the
// Redis server that wrote it), c (when the epoch started, unix ms) and o (a
// time no later than the oldest entry's, so that an append reads the stream
// to trim by age only when something may have aged). Every
// append, and only an append, makes both expire MaxAge later, so an idle
// channel is forgotten and starts a new epoch. Reading creates no key: Head
// of a channel with no meta hash is an empty position naming the server's
// run_id and clock (events.EmptyPosition), and Read after one applies
// afterEmpty. An append with an idempotency key also sets the string
// "<prefix>{<channel>}:i:<key>" (same slot) to the first append's position
// and time, expiring after the idempotency window; the publish script checks
// it first, so a repeat is answered atomically and neither stored nor
// published.
//
// Redis can come back older than what it answered: a restart from an RDB
// snapshot, or a replica promoted with replication lag, keeps the meta hash
// with a seq behind ids already handed out. So every publish, read and head
// script compares the hash's run_id with the server's (INFO server), and on
// a difference (the server restarted, another node was promoted, the keys
// were migrated) starts a new epoch at seq 0 and drops the old stream before
// doing its work (relay_epoch in redis_lib.lua). The cost: every client gets
// a reset after every Redis restart or failover, even when nothing was lost
// (AOF with appendfsync always), and each script runs INFO server. The
// benefit: an id is never handed out for two events, and a client that was
// offline during the rollback is told too, whenever it comes back. A hash
// written without a run_id (an older relay) adopts the current one. Each append also publishes the event on the channel's Pub/Sub
// channel "<prefix>{<channel>}:p" (format in redis_publish.lua; SPUBLISH on
// Cluster), which Watch reads for the channels listened to (Listen);
// Broadcast publishes ephemeral events there too (format in redis_watch.go).
type Redis struct {
	client  redis.UniversalClient
	owned   bool // OpenRedis made client: Close closes it
	addr    string
	prefix  string
	ret     events.Retention
	maxAge  int64 // ms, ≥ 1
	window  int64 // idempotency window, ms, ≥ 1
	log     *slog.Logger
	watcher redisWatcher
	writer  redisWriter // sends every Append: redis_batch.go

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error

	onReconnect func() // RedisOptions.OnReconnect, never nil
	onReceive   func() // RedisOptions.OnReceive, never nil
}

// OpenRedis connects to the Redis at url ("redis://[user:password@]host:port/db",
// "rediss://" for TLS; Sentinel and Cluster forms in newRedisClient) and
// returns a log that closes the connection on Close.
func OpenRedis(ctx context.Context, rawURL string, opt RedisOptions) (*Redis, error) {
	c, err := newRedisClient(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, password included
		}
		return nil, fmt.Errorf("store: open redis: %w; REDIS_URL must look like redis://[user:password@]host:6379/0 (rediss:// for TLS; README lists the Sentinel and Cluster forms)", err)
	}
	r, err := NewRedis(ctx, c, opt)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	r.owned = true
	return r, nil
}

// NewRedis returns a log on client, which it checks (PING) and prepares (it
// loads the scripts). Close leaves client open. client must not retry failed
// commands (MaxRetries -1; for Cluster, MaxRedirects -1 too): a retried
// publish would be stored twice. Set its timeouts as newRedisClient does
// (redis_client.go) for outages to show fast.
func NewRedis(ctx context.Context, client redis.UniversalClient, opt RedisOptions) (*Redis, error) {
	if opt.Prefix == "" {
		opt.Prefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(opt.Prefix, "{}") {
		return nil, fmt.Errorf("store: redis prefix %q contains '{' or '}': choose one without, such as %q: %w", opt.Prefix, DefaultRedisPrefix, events.ErrInvalid)
	}
	if err := checkNoRetry(client); err != nil {
		return nil, fmt.Errorf("store: redis: %w: %w", err, events.ErrInvalid)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.IdempotencyWindow <= 0 {
		opt.IdempotencyWindow = events.IdempotencyWindow
	}
	ret := opt.Retention.WithDefaults()
	r := &Redis{
		client: client,
		addr:   describe(client),
		prefix: opt.Prefix,
		ret:    ret,
		maxAge: max(ret.MaxAge.Milliseconds(), 1),
		window: max(opt.IdempotencyWindow.Milliseconds(), 1),
		log:    opt.Logger.With("store", "redis", "addr", describe(client)),
	}
	r.watcher.r = r
	r.onReconnect = opt.OnReconnect
	if r.onReconnect == nil {
		r.onReconnect = func() {}
	}
	r.onReceive = opt.OnReceive
	if r.onReceive == nil {
		r.onReceive = func() {}
	}
	r.watcher.subs.Store(&[]*redisSub{})
	r.watcher.closing = make(chan struct{})
	r.watcher.cluster, _ = client.(*redis.ClusterClient)
	if err := r.client.Ping(ctx).Err(); err != nil {
		return nil, r.fail("connect", err)
	}
	for _, s := range []*redis.Script{scriptPublish, scriptRead, scriptHead} {
		if err := s.Load(ctx, r.client).Err(); err != nil {
			return nil, r.fail("load scripts", err)
		}
	}
	r.writer.start(r)
	return r, nil
}

// keys returns a channel's meta hash and stream keys, in one hash slot.
func (r *Redis) keys(channel string) []string {
	tag := r.prefix + "{" + channel + "}:"
	return []string{tag + "m", tag + "s"}
}

// pubsubChannel is the Pub/Sub channel of a relay channel's events, in the
// channel's Cluster slot: "<prefix>{<channel>}:p". redis_publish.lua derives
// it from the meta key.
func (r *Redis) pubsubChannel(channel string) string { return r.prefix + "{" + channel + "}:p" }

// publishCommand is how the publish script and Broadcast publish: sharded
// Pub/Sub on Cluster (Redis 7), which keeps each message on its slot's node
// instead of broadcasting it to every node over the cluster bus.
func (r *Redis) publishCommand() string {
	if r.watcher.cluster != nil {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// fail wraps err from op, saying what to do next. Redis not answering (down,
// stalled, failing over, loading its data) wraps events.ErrUnavailable: the
// caller may retry, an append with the same idempotency keys.
func (r *Redis) fail(op string, err error) error {
	var rerr redis.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("store: %s: %w", op, err)
	case errors.Is(err, redis.ErrClosed) || r.closed.Load():
		return fmt.Errorf("store: %s: %w: %w", op, events.ErrClosed, err)
	case unavailable(err):
		return fmt.Errorf("store: %s: %w: %w; is Redis running at %s? set REDIS_URL; retry later (an append with the same idempotency keys)", op, events.ErrUnavailable, err, r.addr)
	case errors.As(err, &rerr):
		return fmt.Errorf("store: %s: Redis at %s refused: %w (relay needs Redis 6.2 or later, and a user allowed scripts, streams and PUBLISH)", op, r.addr, err)
	}
	return fmt.Errorf("store: %s: %w; is Redis running at %s? set REDIS_URL", op, err, r.addr)
}

// unavailable reports whether err means Redis did not answer, or answered
// that it cannot serve yet: the outcome of the call is unknown.
func unavailable(err error) bool {
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &nerr) && nerr.Timeout(), errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" { // any failure to connect: DNS, refused, unreachable
		return true
	}
	for _, prefix := range []string{"LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "BUSY"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

// Append stores drafts, one script per event (see redis_publish.lua), each
// channel's events in order. Concurrent calls share round trips: the
// store's writer sends every call queued while a pipeline is in flight as
// the next pipeline (redis_batch.go), so a lone call costs one round trip
// and many calls about one each per pipeline. A repeat of an idempotency
// key seen within the window comes back with Repeat set and the first
// append's position and time. When ctx ends before the call is sent it is
// withdrawn and nothing is stored; once sent, the outcome is unknown.
func (r *Redis) Append(ctx context.Context, drafts []events.Draft) ([]*events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, r.fail("append", err)
	}
	if err := checkKeys(drafts); err != nil {
		return nil, err
	}
	if len(drafts) == 0 {
		return []*events.Event{}, nil
	}
	return r.writer.append(ctx, drafts)
}

// Read returns up to limit events of channel after position after, applying
// the same rules as Memory.Read to what redis_read.lua saw at one instant.
func (r *Redis) Read(ctx context.Context, channel string, after events.Position, limit int) ([]*events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, r.fail("read", err)
	}
	mode := after.Epoch // "" (Beginning) reads from the oldest kept
	if after.IsEmpty() {
		mode = "*"
	}
	res, err := scriptRead.Run(ctx, r.client, r.keys(channel), mode, after.Seq, limit, r.maxAge, events.NewEpoch(), r.ret.MaxEvents).Slice()
	if err != nil {
		return nil, r.fail("read", err)
	}
	if len(res) != 6 {
		return nil, fmt.Errorf("store: read: read script returned %d values, want 6", len(res))
	}
	epoch, _ := res[0].(string)
	head, _ := res[1].(int64)
	first, _ := res[2].(int64)
	entries, _ := res[3].([]any)
	run, _ := res[4].(string)
	createdMs, _ := res[5].(int64)
	switch {
	case after.IsEmpty():
		var created time.Time
		if createdMs >= 0 {
			created = time.UnixMilli(createdMs)
		}
		p, err := afterEmpty(after, generation(run), epoch, created, r.ret.MaxAge)
		if err != nil || epoch == "" {
			return nil, err
		}
		after = p
	case epoch == "" && after.IsBeginning():
		return nil, nil
	case epoch == "":
		return nil, events.ErrCursorGone
	case after.IsBeginning():
		after = events.Position{Epoch: epoch, Seq: uint64(first - 1)}
	}
	if after.Epoch != epoch || after.Seq > uint64(head) || after.Seq+1 < uint64(first) {
		return nil, events.ErrCursorGone
	}
	out := make([]*events.Event, 0, len(entries))
	for _, e := range entries {
		ev, err := entryEvent(channel, epoch, e)
		if err != nil {
			return nil, fmt.Errorf("store: read %s: %w", channel, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// entryEvent makes an event of a stream entry, [id, [field, value, …]].
func entryEvent(channel, epoch string, entry any) (*events.Event, error) {
	e, _ := entry.([]any)
	if len(e) != 2 {
		return nil, fmt.Errorf("malformed stream entry %v", entry)
	}
	id, _ := e[0].(string)
	seqText, _, _ := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("stream entry id %q: %w", id, err)
	}
	d := events.Draft{Channel: channel}
	var ms int64
	kv, _ := e[1].([]any)
	for i := 0; i+1 < len(kv); i += 2 {
		v, _ := kv[i+1].(string)
		switch kv[i] {
		case "d":
			d.Fields = []byte(v)
		case "y":
			d.Type = v
		case "t":
			ms, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return events.NewEvent(d, events.Position{Epoch: epoch, Seq: seq}, time.UnixMilli(ms)), nil
}

// Head returns the channel's newest position, or an empty position (of the
// server run's generation, at Redis's clock) when it has no log. It creates
// no key and extends no expiry.
func (r *Redis) Head(ctx context.Context, channel string) (events.Position, error) {
	if err := ctx.Err(); err != nil {
		return events.Position{}, r.fail("head", err)
	}
	res, err := scriptHead.Run(ctx, r.client, r.keys(channel), events.NewEpoch()).Slice()
	if err != nil {
		return events.Position{}, r.fail("head", err)
	}
	switch len(res) {
	case 2:
		epoch, _ := res[0].(string)
		seq, _ := res[1].(int64)
		return events.Position{Epoch: epoch, Seq: uint64(seq)}, nil
	case 4:
		run, _ := res[2].(string)
		ms, _ := res[3].(int64)
		return events.EmptyPosition(generation(run), time.UnixMilli(ms))
	}
	return events.Position{}, fmt.Errorf("store: head: head script returned %d values, want 2 or 4", len(res))
}

// generation is the empty-position generation of a Redis server run: the
// first 12 hex digits of a hash of its run_id, whatever form a server
// (or a Redis-compatible one) gives it.
func generation(runID string) string {
	sum := sha256.Sum256([]byte(runID))
	return hex.EncodeToString(sum[:6])
}

// Ping reports whether Redis answers, for readiness checks.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.fail("ping", err)
	}
	return nil
}

// Close stops watching, ends queued appends with ErrClosed (one in flight
// gets its answer first, within the client's read timeout) and, when
// OpenRedis made the client, closes it. It is idempotent.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.watcher.close()
		r.writer.close()
		if r.owned {
			r.closeErr = r.client.Close()
		}
	})
	return r.closeErr
}
