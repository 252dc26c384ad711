package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// benchToken is a realistic token: a user in a few projects with grants.
func benchToken(b *testing.B) string {
	b.Helper()
	return hs256(b, jwt.MapClaims{"token_type": "access", "user_id": 42, "jti": "0f3c2a9e5b7d4c1a8e6f2b3d9c0a1e4f",
		"iat": unix(0), "exp": unix(time.Hour), "name": "Ada Lovelace", "projects": []int{7, 12, 31},
		"subscribe": []string{"lobby"}, "publish": []string{"project_7_*", "project_12_*"}})
}

// BenchmarkVerify measures a cold verification: HMAC, base64 and JSON,
// with the cache disabled.
func BenchmarkVerify(b *testing.B) {
	v, _ := newTestVerifier(b)
	v.cache = nil
	token := benchToken(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyCached measures a cache hit, the common case of a backend
// publishing many events with one token.
func BenchmarkVerifyCached(b *testing.B) {
	v, _ := newTestVerifier(b)
	token := benchToken(b)
	if _, err := v.Verify(token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
