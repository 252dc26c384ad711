package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewVerifierShortSecret(t *testing.T) {
	_, err := NewVerifier([]byte("short"))
	if err == nil || !strings.Contains(err.Error(), "RELAY_JWT_SECRET") {
		t.Errorf("NewVerifier(5 bytes): got %v, want an error naming RELAY_JWT_SECRET", err)
	}
}

func TestMintRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		id          Identity
		rawProjects string
	}{
		{"numeric projects", Identity{UserID: "42", Name: "Ada", Projects: []string{"7", "12"},
			Subscribe: []string{"lobby"}, Publish: []string{"project_7_*"}}, `[7,12]`},
		{"string projects", Identity{UserID: "u-1", Projects: []string{"7", "acme"}}, `["7","acme"]`},
		{"no grants", Identity{UserID: "42"}, ``},
	}
	v, err := NewVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := Mint(testSecret, tt.id, time.Hour)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if got := string(payload(t, token)["projects"]); got != tt.rawProjects {
				t.Errorf("projects claim: got %s, want %s", got, tt.rawProjects)
			}
			got, err := v.Verify(token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if d := time.Until(got.Expires); d < time.Hour-2*time.Second || d > time.Hour {
				t.Errorf("Expires: got %v from now, want about 1h", d)
			}
			want := tt.id
			want.Expires = got.Expires
			checkIdentity(t, got, &want)
		})
	}
}

func TestMintRefuses(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		id     Identity
		ttl    time.Duration
	}{
		{"short secret", []byte("short"), Identity{UserID: "1"}, time.Hour},
		{"zero ttl", testSecret, Identity{UserID: "1"}, 0},
		{"no user", testSecret, Identity{}, time.Hour},
		{"bad project", testSecret, Identity{UserID: "1", Projects: []string{"a_b"}}, time.Hour},
		{"bad pattern", testSecret, Identity{UserID: "1", Publish: []string{"a b"}}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := Mint(tt.secret, tt.id, tt.ttl); err == nil {
				t.Errorf("Mint: got token %q, want an error", token)
			}
		})
	}
}

func TestIdentityLogValue(t *testing.T) {
	var buf bytes.Buffer
	token := hs256(t, jwt.MapClaims{"sub": "42", "name": "Ada", "exp": unix(time.Hour)})
	v, _ := newTestVerifier(t)
	id, err := v.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("hi", "identity", id)
	got := buf.String()
	if !strings.Contains(got, "identity.user_id=42 identity.name=Ada") || strings.Contains(got, token) {
		t.Errorf("log line: got %q, want user id and name and no token", got)
	}
}

// payload decodes the claims of token without verifying it.
func payload(t *testing.T, token string) map[string]json.RawMessage {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkErr checks that err wraps want (and not the other sentinel), that
// its message contains msg, and that it does not quote the token.
