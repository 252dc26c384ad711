package auth

import (
	"strings"
	"sync"
)

// cacheSize bounds the verified-token cache. Publishing backends reuse one
// token for many requests, and a browser reconnects with the same token, so a
// few thousand entries cover a busy node; at the 8 KiB token limit the cache
// holds at most 32 MiB of keys, typically under 4 MiB.
const cacheSize = 4096

// tokenCache maps a token string already verified to its Identity, so that
// repeated requests with one token skip the HMAC and JSON work. Entries are
// checked against their Identity's Expires on every hit by the Verifier.
// When full, an arbitrary entry is evicted (Go's map iteration order is
// random), which costs O(1) and needs no bookkeeping on hits. A nil
// *tokenCache caches nothing. It is safe for concurrent use.
type tokenCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]*Identity
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, m: make(map[string]*Identity, max)}
}

// get returns the Identity cached for token, expired or not.
func (c *tokenCache) get(token string) (*Identity, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	id, ok := c.m[token]
	c.mu.RUnlock()
	return id, ok
}

// put caches id for token, evicting an arbitrary entry when full.
func (c *tokenCache) put(token string, id *Identity) {
	if c == nil {
		return
	}
	// Clone so that a token sliced from a larger header does not pin it.
	token = strings.Clone(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[token]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[token] = id
}

// remove forgets token.
func (c *tokenCache) remove(token string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, token)
	c.mu.Unlock()
}

// len returns the number of cached tokens.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
