package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyClaims(t *testing.T) {
	exp := unix(time.Hour)
	tests := []struct {
		name    string
		claims  jwt.MapClaims
		want    Identity // checked when wantErr is nil
		wantErr error
		wantMsg string // a substring of the error message
	}{
		{
			name:   "sub",
			claims: jwt.MapClaims{"sub": "42", "name": "Ada", "exp": exp},
			want:   Identity{UserID: "42", Name: "Ada"},
		},
		{
			name: "simplejwt access token",
			claims: jwt.MapClaims{"token_type": "access", "exp": exp, "iat": unix(-time.Minute),
				"jti": "0f3c2a9e5b7d4c1a8e6f2b3d9c0a1e4f", "user_id": 42},
			want: Identity{UserID: "42"},
		},
		{
			name:   "simplejwt string user_id",
			claims: jwt.MapClaims{"token_type": "access", "exp": exp, "user_id": "u-7"},
			want:   Identity{UserID: "u-7"},
		},
		{
			name:   "sub wins over user_id",
			claims: jwt.MapClaims{"sub": "1", "user_id": 2, "exp": exp},
			want:   Identity{UserID: "1"},
		},
		{name: "refresh token", claims: jwt.MapClaims{"token_type": "refresh", "user_id": 42, "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: "send the access token"},
		{name: "sliding token", claims: jwt.MapClaims{"token_type": "sliding", "user_id": 42, "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: `token_type "sliding"`},
		{name: "no exp", claims: jwt.MapClaims{"sub": "42"},
			wantErr: ErrUnauthenticated, wantMsg: "no exp"},
		{name: "expired", claims: jwt.MapClaims{"sub": "42", "exp": unix(-time.Second)},
			wantErr: ErrTokenExpired, wantMsg: "expired at 2026-03-01T11:59:59Z: fetch a fresh token"},
		{name: "exp is now", claims: jwt.MapClaims{"sub": "42", "exp": unix(0)},
			wantErr: ErrTokenExpired},
		{name: "not valid yet", claims: jwt.MapClaims{"sub": "42", "exp": exp, "nbf": unix(time.Minute)},
			wantErr: ErrUnauthenticated, wantMsg: "not valid before"},
		{name: "no subject", claims: jwt.MapClaims{"name": "Ada", "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: "neither sub nor user_id"},
		{name: "sub not an id", claims: jwt.MapClaims{"sub": "a_b", "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: `claim "sub"`},
		{name: "user_id not an integer", claims: jwt.MapClaims{"user_id": 1.5, "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: `claim "user_id" is 1.5`},
		{name: "user_id boolean", claims: jwt.MapClaims{"user_id": true, "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: "JSON boolean"},
		{name: "name not a string", claims: jwt.MapClaims{"sub": "1", "name": 5, "exp": exp},
			wantErr: ErrUnauthenticated, wantMsg: "malformed"},
	}
	v, _ := newTestVerifier(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := hs256(t, tt.claims)
			got, err := v.Verify(token)
			if tt.wantErr != nil {
				checkErr(t, token, err, tt.wantErr, tt.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("Verify: got error %v, want none", err)
			}
			tt.want.Expires = time.Unix(exp, 0)
			checkIdentity(t, got, &tt.want)
		})
	}
}

func TestVerifyProjects(t *testing.T) {
	tests := []struct {
		name     string
		projects any
		want     []string
		wantMsg  string // non-empty: Verify must fail with this in the message
	}{
		{name: "numbers", projects: []any{1, 2}, want: []string{"1", "2"}},
		{name: "strings", projects: []any{"1", "2"}, want: []string{"1", "2"}},
		{name: "mixed", projects: []any{1, "2", 30}, want: []string{"1", "2", "30"}},
		{name: "big number", projects: []any{json.Number("12345678901234")}, want: []string{"12345678901234"}},
		{name: "non-numeric string", projects: []any{"acme-web"}, want: []string{"acme-web"}},
		{name: "empty", projects: []any{}, want: []string{}},
		{name: "null", projects: nil, want: nil},
		{name: "fraction", projects: []any{1, 1.5}, wantMsg: `element 1 is 1.5, want a non-negative integer`},
		{name: "exponent", projects: []any{json.Number("1e3")}, wantMsg: "is 1e3"},
		{name: "negative", projects: []any{-1}, wantMsg: "is -1"},
		{name: "object", projects: []any{map[string]any{"id": 1}}, wantMsg: "element 0 is a JSON object"},
		{name: "boolean", projects: []any{true}, wantMsg: "JSON boolean"},
		{name: "string with underscore", projects: []any{"a_b"}, wantMsg: `element 0 is "a_b"`},
		{name: "not an array", projects: "1", wantMsg: "must be an array"},
	}
	v, _ := newTestVerifier(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := hs256(t, jwt.MapClaims{"sub": "1", "exp": unix(time.Hour), "projects": tt.projects})
			got, err := v.Verify(token)
			if tt.wantMsg != "" {
				checkErr(t, token, err, ErrUnauthenticated, tt.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("Verify: got error %v, want none", err)
			}
			if !slices.Equal(got.Projects, tt.want) || (got.Projects == nil) != (tt.want == nil) {
				t.Errorf("Projects: got %#v, want %#v", got.Projects, tt.want)
			}
		})
	}
}

func TestVerifyPatterns(t *testing.T) {
	tests := []struct {
		name    string
		value   any
		want    []string
		wantMsg string
	}{
		{name: "string", value: "project_7_*", want: []string{"project_7_*"}},
		{name: "array", value: []string{"project_7_*", "lobby"}, want: []string{"project_7_*", "lobby"}},
		{name: "absent", value: nil, want: nil},
		{name: "invalid pattern", value: []string{"ok", "bad pattern"}, wantMsg: `element 1 is "bad pattern"`},
		{name: "empty string", value: "", wantMsg: `element 0 is ""`},
		{name: "number", value: 5, wantMsg: "must be a channel pattern or an array"},
		{name: "array of numbers", value: []int{5}, wantMsg: "must be a channel pattern or an array"},
	}
	v, _ := newTestVerifier(t)
	for _, claim := range []string{"subscribe", "publish"} {
		for _, tt := range tests {
			t.Run(claim+"/"+tt.name, func(t *testing.T) {
				token := hs256(t, jwt.MapClaims{"sub": "1", "exp": unix(time.Hour), claim: tt.value})
				got, err := v.Verify(token)
				if tt.wantMsg != "" {
					checkErr(t, token, err, ErrUnauthenticated, `claim "`+claim+`" `+tt.wantMsg)
					return
				}
				if err != nil {
					t.Fatalf("Verify: got error %v, want none", err)
				}
				gotList := got.Subscribe
				if claim == "publish" {
					gotList = got.Publish
				}
				if !slices.Equal(gotList, tt.want) {
					t.Errorf("%s: got %q, want %q", claim, gotList, tt.want)
				}
			})
		}
	}
}

func TestVerifyRefusesTokens(t *testing.T) {
	good := jwt.MapClaims{"sub": "42", "exp": unix(time.Hour)}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := hs256(t, good)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT"}`))
	tests := []struct {
		name    string
		token   string
		wantMsg string
	}{
		{"empty", "", "no token"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), `signed with "none"`},
		{"HS384", sign(t, jwt.SigningMethodHS384, testSecret, good), `signed with "HS384"`},
		{"HS512", sign(t, jwt.SigningMethodHS512, testSecret, good), `signed with "HS512"`},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, good), `signed with "RS256"`},
		{"no alg", header + valid[strings.Index(valid, "."):], "no alg header"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-long!"), good),
			"signature does not match: set RELAY_JWT_SECRET"},
		{"tampered claims", tamper(t, valid), "signature does not match"},
		{"one segment", "abc", "malformed"},
		{"garbage", "a.b.c", "malformed"},
		{"too long", strings.Repeat("a", MaxTokenLen+1), "over the 8192-byte limit"},
	}
	v, _ := newTestVerifier(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(tt.token)
			if got != nil {
				t.Errorf("Verify: got identity %v, want nil", got.UserID)
			}
			checkErr(t, tt.token, err, ErrUnauthenticated, tt.wantMsg)
		})
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache holds %d refused tokens, want 0", n)
	}
}

// tamper replaces the claims of token with a copy granting "*", keeping the
// header and signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	claims := `{"sub":"42","exp":` + jsonInt(unix(time.Hour)) + `,"publish":"*"}`
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(claims))
	return strings.Join(parts, ".")
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
