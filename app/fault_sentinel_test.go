package main

import (
	"testing"
	"time"

	"github.com/relaydev/relay/store/redistest"
)

// A Sentinel failover to the replica, with two relays reaching Redis through
// the Sentinel. A promotion may lose writes the replica had not received, so
// a reset is an honest answer; silence, loss or a reused id is not.
func init() {
	var s *redistest.Sentinel
	extraScenarios = append(extraScenarios, delivery{
		name: "sentinel-failover/redis", relays: 2, sse: 12, ws: 12, rate: 200,
		duration: 8 * time.Second, faultAt: 2 * time.Second, timeout: 3 * time.Second, resetOK: true,
		setup: func(t *testing.T) map[string]string {
			s = redistest.NewSentinel(t, 1)
			return map[string]string{"REDIS_URL": s.URL}
		},
		fault: func(t *testing.T, c *cluster) {
			began := time.Now()
			s.Failover(t)
			s.WaitForMaster(t, 10*time.Second)
			t.Logf("failover: the replica is master %s after SENTINEL FAILOVER", time.Since(began).Round(time.Millisecond))
		},
	})
}
