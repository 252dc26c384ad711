package store

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

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
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(o), nil
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
