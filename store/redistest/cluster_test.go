package redistest_test

import (
	"context"
	"testing"

	"github.com/relaydev/relay/store/redistest"
)

// TestNewCluster: clusters of one master and of two start and are ready
// (every node agrees on the slots); each node answers.
func TestNewCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts Redis Cluster nodes")
	}
	for _, masters := range []int{1, 2} {
		c := redistest.NewCluster(t, masters)
		for i := range c.Nodes {
			if err := c.Client(t, i).Ping(context.Background()).Err(); err != nil {
				t.Errorf("%d masters: node %d: %v", masters, i, err)
			}
		}
		if c.URL == "" {
			t.Errorf("%d masters: no URL", masters)
		}
	}
}
