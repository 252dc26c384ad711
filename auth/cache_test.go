package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyCacheExpiry(t *testing.T) {
	v, clock := newTestVerifier(t)
	token := hs256(t, jwt.MapClaims{"sub": "42", "exp": unix(time.Minute)})
	first, err := v.Verify(token)
	if err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	second, err := v.Verify(token)
	if err != nil {
		t.Fatalf("second Verify: %v", err)
	}
	if first != second {
		t.Errorf("second Verify: got a new Identity, want the cached one")
	}
	clock.t = t0.Add(time.Minute) // exactly exp: no leeway
	_, err = v.Verify(token)
	checkErr(t, token, err, ErrTokenExpired, "expired at 2026-03-01T12:01:00Z")
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache length after expiry: got %d, want 0", n)
	}
	_, err = v.Verify(token) // now through the parser again
	checkErr(t, token, err, ErrTokenExpired, "expired at 2026-03-01T12:01:00Z")
}

func TestVerifyConcurrent(t *testing.T) {
	v, _ := newTestVerifier(t)
	tokens := make([]string, 8)
	for i := range tokens {
		tokens[i] = hs256(t, jwt.MapClaims{"sub": "42", "exp": unix(time.Hour), "jti": jsonInt(int64(i))})
	}
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for i := range 100 {
				if _, e := v.Verify(tokens[(g+i)%len(tokens)]); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
}

func TestTokenCacheBound(t *testing.T) {
	c := newTokenCache(4)
	id := &Identity{UserID: "1"}
	for i := range 10 {
		c.put(jsonInt(int64(i)), id)
		c.put(jsonInt(int64(i)), id) // re-putting does not evict
	}
	if n := c.len(); n != 4 {
		t.Errorf("cache length: got %d, want 4", n)
	}
	if _, ok := c.get("9"); !ok {
		t.Errorf("get(last token): got miss, want hit")
	}
}
