package store

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// newRedisClient picks the client a URL asks for:
//   - ?master_name=M (and more sentinels as &addr=host:port): Sentinel;
//   - ?cluster=true, or more seed nodes as &addr=host:port: Cluster;
//   - otherwise a single node.
func newRedisClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, err
		}
		failFast(&o.MaxRetries, &o.DialerRetries, &o.DialTimeout, &o.DialerRetryTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout)
		return newFailoverClient(o), nil // follows master switches for Watch: redis_failover.go
	case q.Has("cluster") || q.Has("addr"):
		cluster, err := strconv.ParseBool(q.Get("cluster"))
		if q.Has("cluster") && (err != nil || !cluster) {
			return nil, fmt.Errorf("cluster=%q: want cluster=true", q.Get("cluster"))
		}
		q.Del("cluster")
		u.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, err
		}
		failFast(&o.MaxRetries, &o.DialerRetries, &o.DialTimeout, &o.DialerRetryTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout)
		if o.MaxRedirects == 0 {
			// The cluster client re-sends a pipeline after a network error
			// up to MaxRedirects times, like MaxRetries elsewhere. Without
			// redirects, a call that meets a MOVED (a slot migration) fails
			// once, and the client reloads the slot map for the next one.
			o.MaxRedirects = -1
		}
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	failFast(&o.MaxRetries, &o.DialerRetries, &o.DialTimeout, &o.DialerRetryTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout)
	return redis.NewClient(o), nil
}

// The timeouts of the clients relay builds, so that an outage shows within
// about a second instead of go-redis's defaults (5 s dial and read timeouts,
// 5 dial attempts per connection, 3 retries of every call: about 2 s for a
// publish to a dead Redis). A URL's own values (dial_timeout=… and so on)
// are kept.
const (
	// redisDialTimeout bounds one connection attempt. Redis answers a
	// connect in well under a millisecond on a LAN; 400 ms leaves room for a
	// slow TLS handshake across regions.
	redisDialTimeout = 400 * time.Millisecond
	// redisDialerRetries is the number of connection attempts per dial (not
	// retries: go-redis counts attempts), redisDialerRetryWait apart: a dial
	// to a dead Redis fails within 2×400+100 ms when its host is gone, and in
	// about 100 ms when the port refuses.
	redisDialerRetries   = 2
	redisDialerRetryWait = 100 * time.Millisecond
	// redisReadTimeout bounds waiting for a reply, so a stalled Redis
	// (paused, swapping, a long script elsewhere) fails a call within it. Every
	// script relay runs takes milliseconds; 2 s is far above that and still
	// short enough that a publisher gets a 503 and retries with its
	// idempotency key before most HTTP clients give up.
	redisReadTimeout = 2 * time.Second
	// redisWriteTimeout bounds writing a request (a full socket buffer).
	redisWriteTimeout = 2 * time.Second
	// redisPoolTimeout bounds waiting for a free connection when all are in
	// use. A burst of reads (every subscription of a process re-reading the
	// log after a Pub/Sub reconnect) queues on a pool of 10 per core, so the
	// wait must outlast a burst of fast reads; under an outage every call is
	// bounded by the caller's deadline anyway (RELAY_STORE_TIMEOUT, 3 s), and
	// a dead Redis fails at the dial, not here. 1 s made a bench of 1,000
	// subscribers fail its reads.
	redisPoolTimeout = 3 * time.Second
)

// failFast sets a client's retries and timeouts where its URL left them
// unset. maxRetries becomes -1: go-redis re-sends a whole pipeline when
// reading its reply fails, and relay's publish script must run at most once
// (NewRedis refuses a client that would re-send).
func failFast(maxRetries, dialerRetries *int, dial, dialerRetryWait, read, write, pool *time.Duration) {
	if *maxRetries == 0 {
		*maxRetries = -1
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{{dial, redisDialTimeout}, {dialerRetryWait, redisDialerRetryWait}, {read, redisReadTimeout}, {write, redisWriteTimeout}, {pool, redisPoolTimeout}} {
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	if *dialerRetries == 0 {
		*dialerRetries = redisDialerRetries
	}
}

// checkNoRetry refuses a client that would re-send a command whose reply it
// failed to read: the publish script would then run twice.
func checkNoRetry(client redis.UniversalClient) error {
	switch c := client.(type) {
	case *redis.Client: // single node and Sentinel (failover) clients
		if n := c.Options().MaxRetries; n > 0 {
			return fmt.Errorf("the Redis client retries failed commands (MaxRetries %d), which would store one publish twice: set MaxRetries: -1 in its Options", n)
		}
	case *redis.ClusterClient:
		o := c.Options()
		if o.MaxRetries > 0 || o.MaxRedirects > 0 {
			return fmt.Errorf("the Redis Cluster client retries failed commands (MaxRetries %d, MaxRedirects %d), which would store one publish twice: set MaxRetries: -1 and MaxRedirects: -1 in its ClusterOptions", o.MaxRetries, o.MaxRedirects)
		}
	}
	return nil
}

// describe names where client connects, for error messages.
func describe(client redis.UniversalClient) string {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	}
	return "the configured address"
}
