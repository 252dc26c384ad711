package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testPublishKey returns a key named name whose secret is 40 of c.
func testPublishKey(name, c string, channels ...string) PublishKey {
	if len(channels) == 0 {
		channels = []string{"*"}
	}
	return PublishKey{Name: name, Secret: strings.Repeat(c, 40), Channels: channels}
}

func TestParsePublishKeys(t *testing.T) {
	s1, s2 := strings.Repeat("a1", 32), strings.Repeat("B_-9", 10)
	keys, err := ParsePublishKeys("django=" + s1 + ":project_*,user_*_notifications;\n cron = " + s2 + " : ns:jobs.*, * ;")
	if err != nil {
		t.Fatal(err)
	}
	want := []PublishKey{
		{Name: "django", Secret: s1, Channels: []string{"project_*", "user_*_notifications"}},
		{Name: "cron", Secret: s2, Channels: []string{"ns:jobs.*", "*"}},
	}
	if len(keys) != len(want) {
		t.Fatalf("got %d keys, want %d", len(keys), len(want))
	}
	for i := range want {
		if keys[i].Name != want[i].Name || keys[i].Secret != want[i].Secret || !slices.Equal(keys[i].Channels, want[i].Channels) {
			t.Errorf("key %d: got %s %q, want %s %q", i, keys[i].Name, keys[i].Channels, want[i].Name, want[i].Channels)
		}
	}
	if keys, err := ParsePublishKeys(" ;\n"); err != nil || len(keys) != 0 {
		t.Errorf("blank: got %d keys, %v, want none and no error", len(keys), err)
	}

	secret := strings.Repeat("s3cr3t", 6)
	tests := []struct {
		name, spec, wantMsg string
	}{
		{"no name", "=" + secret + ":*", "want a name"},
		{"no equals", secret + ":*", "want a name"},
		{"bad name", "dj ango=" + secret + ":*", "want a name"},
		{"no patterns", "django=" + secret, "publish key 1 (django): no ':'"},
		{"empty pattern", "django=" + secret + ":", `"" is not a channel pattern`},
		{"bad pattern", "django=" + secret + ":a b", `"a b" is not a channel pattern`},
		{"short secret", "django=" + secret[:31] + ":*", "31 characters, want at least 32"},
		{"secret with a dot", "django=" + secret + ".x:*", "only letters, digits"},
		{"secret with '='", "django=" + secret + "=:*", "only letters, digits"},
		{"duplicate name", "django=" + secret + ":*;django=" + s1 + ":*", `publish key 2: the name "django" is used twice`},
		{"duplicate secret", "django=" + secret + ":*;cron=" + secret + ":*", "publish key 2 (cron): its secret is the same"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePublishKeys(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), secret[:20]) || strings.Contains(err.Error(), s1[:20]) {
				t.Errorf("error %q quotes a secret", err)
			}
		})
	}
}

// TestPublishKeyNeverPrinted checks that every way of printing or logging a
// key, alone or inside a struct or slice, shows its name only.
func TestPublishKeyNeverPrinted(t *testing.T) {
	k := testPublishKey("django", "q")
	holder := struct{ Keys []PublishKey }{[]PublishKey{k}}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, verb+"\n", k)
		fmt.Fprintf(&out, verb+"\n", holder)
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("key", "key", k, "keys", holder.Keys)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("key", "key", k, "keys", holder.Keys)
	if strings.Contains(out.String(), k.Secret[:8]) {
		t.Errorf("printed:\n%s\nwhich holds the secret", out.String())
	}
	if !strings.Contains(out.String(), "django") {
		t.Errorf("printed:\n%s\nwhich does not name the key", out.String())
	}
}

func TestVerifyPublisher(t *testing.T) {
	django := testPublishKey("django", "d", "project_*", "user_*_notifications")
	rotated := testPublishKey("django2", "e", "project_*", "user_*_notifications")
	v := verifierWith(t, Keys{Secrets: [][]byte{testSecret}, Publish: []PublishKey{django, rotated}})

	for _, k := range []PublishKey{django, rotated} {
		id, err := v.VerifyPublisher(k.Secret)
		if err != nil {
			t.Fatalf("%s: %v", k.Name, err)
		}
		if id.PublishKey != k.Name || id.UserID != "" || !id.Expires.IsZero() {
			t.Errorf("%s: got identity %+v, want publish key %s, no user, no expiry", k.Name, id, k.Name)
		}
		for ch, want := range map[string]bool{"project_7_tickets": true, "user_3_notifications": true, "lobby": false, "user_3_other": false} {
			if got := id.CanPublish(ch); got != want {
				t.Errorf("%s: CanPublish(%s) = %v, want %v", k.Name, ch, got, want)
			}
		}
		for _, ch := range []string{"project_7_tickets", "user__notifications", "user_3_notifications", "lobby"} {
			if id.CanSubscribe(ch) {
				t.Errorf("%s: CanSubscribe(%s) = true, want false: a publish key may only publish", k.Name, ch)
			}
		}
		_, err = v.Verify(k.Secret)
		checkErr(t, k.Secret, err, ErrForbidden, `publish key "`+k.Name+`", which may only publish`)
		if errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Verify(key): got %v, which also wraps ErrUnauthenticated", err)
		}
	}

	tests := []struct {
		name, token, wantMsg string
	}{
		{"wrong key", strings.Repeat("d", 39) + "x", "matches no publish key"},
		{"a prefix of a key", django.Secret[:32], "matches no publish key"},
		{"a key and more", django.Secret + "d", "matches no publish key"},
		{"empty", "", "no token"},
		{"too long", strings.Repeat("d", MaxTokenLen+1), "over the 8192-byte limit"},
		{"forged JWT", sign(t, jwt.SigningMethodHS256, []byte(django.Secret), jwt.MapClaims{"sub": "1", "exp": unix(time.Hour), "publish": "*"}),
			"signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.VerifyPublisher(tt.token)
			if id != nil {
				t.Fatalf("got identity %+v, want an error", id)
			}
			checkErr(t, tt.token, err, ErrUnauthenticated, tt.wantMsg)
		})
	}

	// A token publishes through VerifyPublisher as through Verify.
	tok := hs256(t, jwt.MapClaims{"sub": "1", "exp": unix(time.Hour), "publish": "lobby"})
	if id, err := v.VerifyPublisher(tok); err != nil || !id.CanPublish("lobby") || id.PublishKey != "" {
		t.Errorf("VerifyPublisher(token): got %+v, %v, want user 1 publishing to lobby", id, err)
	}

	// Without publish keys, a credential without dots is no key.
	plain := verifierWith(t, Keys{Secrets: [][]byte{testSecret}})
	_, err := plain.VerifyPublisher(django.Secret)
	checkErr(t, django.Secret, err, ErrUnauthenticated, "no publish key is configured")
}

func TestIdentityLogValueOfPublishKey(t *testing.T) {
	var out bytes.Buffer
	id := &Identity{PublishKey: "cron", Publish: []string{"*"}}
	slog.New(slog.NewTextHandler(&out, nil)).Info("publish", "who", id)
	if got := out.String(); !strings.Contains(got, "who.publish_key=cron") {
		t.Errorf("logged %q, want who.publish_key=cron", got)
	}
}

func BenchmarkVerifyPublisherKey(b *testing.B) {
	keys := []PublishKey{testPublishKey("a", "a"), testPublishKey("b", "b")}
	v, err := NewVerifierWith(Keys{Secrets: [][]byte{testSecret}, Publish: keys})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := v.VerifyPublisher(keys[1].Secret); err != nil {
			b.Fatal(err)
		}
	}
}
