package store

import (
	"fmt"
	"testing"
)

func TestRedisURLPicksClient(t *testing.T) {
	tests := []struct {
		name, url string
		want      string // the client's type
	}{
		{"single node", "redis://127.0.0.1:6379/0", "*redis.Client"},
		{"tls single node", "rediss://user:pw@example.com:6380", "*redis.Client"},
		{"sentinel", "redis://127.0.0.1:26379/0?master_name=mymaster&addr=127.0.0.1:26380", "*redis.Client"},
		{"cluster by flag", "redis://127.0.0.1:7000?cluster=true", "*redis.ClusterClient"},
		{"cluster by seeds", "redis://127.0.0.1:7000?addr=127.0.0.1:7001", "*redis.ClusterClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newRedisClient(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := fmt.Sprintf("%T", c); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"redis://x?cluster=no", "http://x:1", "redis://x?master_name=m&bogus=1"} {
		if c, err := newRedisClient(bad); err == nil {
			c.Close()
			t.Errorf("%s: got a client, want an error", bad)
		}
	}
}
