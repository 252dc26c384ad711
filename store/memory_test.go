package store_test

import (
	"testing"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/storetest"
)

func TestMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, opt storetest.Options) events.Log {
		m := store.NewMemoryWith(store.MemoryOptions{Retention: opt.Retention, IdempotencyWindow: opt.IdempotencyWindow})
		t.Cleanup(func() { _ = m.Close() })
		return m
	})
}
