package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/relaydev/relay/auth"
)

// edPEM returns a fresh Ed25519 key and its public key as PEM text.
func edPEM(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestVerifierKeysConfig(t *testing.T) {
	_, pemText := edPEM(t)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "jwt.pem")
	if err := os.WriteFile(pemFile, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
		"x": base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("ab", 20)

	tests := []struct {
		name                     string
		cfg                      config
		secrets, public, publish int
		wantMsg                  string
	}{
		{name: "secret", cfg: config{JWTSecret: testSecret}, secrets: 1},
		{name: "secret and previous", cfg: config{JWTSecret: testSecret, JWTSecretPrevious: "previous-secret-0123456789"}, secrets: 2},
		{name: "previous alone", cfg: config{JWTSecretPrevious: "previous-secret-0123456789"}, wantMsg: "RELAY_JWT_SECRET_PREVIOUS is set but RELAY_JWT_SECRET is not"},
		{name: "short previous", cfg: config{JWTSecret: testSecret, JWTSecretPrevious: "short"}, wantMsg: "RELAY_JWT_SECRET_PREVIOUS is 5 bytes"},
		{name: "PEM inline", cfg: config{JWTPublicKey: pemText}, public: 1},
		{name: "PEM with flattened newlines", cfg: config{JWTPublicKey: strings.ReplaceAll(pemText, "\n", `\n`)}, public: 1},
		{name: "PEM file", cfg: config{JWTPublicKey: pemFile}, public: 1},
		{name: "PEM file missing", cfg: config{JWTPublicKey: filepath.Join(dir, "nope.pem")}, wantMsg: "RELAY_JWT_PUBLIC_KEY: open"},
		{name: "PEM that is not a key", cfg: config{JWTPublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, wantMsg: "RELAY_JWT_PUBLIC_KEY: auth: PEM block 1"},
		{name: "JWKS file", cfg: config{JWTJWKS: jwksFile}, public: 1},
		{name: "JWKS inline, beside a PEM", cfg: config{JWTJWKS: string(jwks), JWTPublicKey: pemText}, public: 2},
		{name: "JWKS not JSON", cfg: config{JWTJWKS: "{nope"}, wantMsg: "RELAY_JWT_JWKS: auth: JWKS is not"},
		{name: "publish keys", cfg: config{JWTSecret: testSecret, PublishKeys: "a=" + key + ":*;b=" + strings.Repeat("cd", 20) + ":x"}, secrets: 1, publish: 2},
		{name: "bad publish key", cfg: config{JWTSecret: testSecret, PublishKeys: "a=" + key + "!:*"}, wantMsg: "RELAY_PUBLISH_KEYS: auth: publish key 1 (a)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := tt.cfg.verifierKeys(os.ReadFile)
			if tt.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantMsg)
				}
				for _, s := range []string{testSecret, key, "previous-secret"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q quotes a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys.Secrets) != tt.secrets || len(keys.Public) != tt.public || len(keys.Publish) != tt.publish {
				t.Errorf("got %d secrets, %d public keys, %d publish keys, want %d, %d, %d",
					len(keys.Secrets), len(keys.Public), len(keys.Publish), tt.secrets, tt.public, tt.publish)
			}
		})
	}
}

// TestVerifierLogNamesNoSecret: the start-up line says what is accepted,
// with publish keys by name only.
func TestVerifierLogNamesNoSecret(t *testing.T) {
	key := strings.Repeat("k3", 20)
	cfg := config{JWTSecret: testSecret, PublishKeys: "django=" + key + ":project_*"}
	var out bytes.Buffer
	if _, err := newVerifier(&cfg, slog.New(slog.NewTextHandler(&out, nil))); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, "algorithms=[HS256]") || !strings.Contains(got, "publish_keys=[django]") {
		t.Errorf("logged %q, want the algorithms and the key's name", got)
	}
	if strings.Contains(got, key[:10]) || strings.Contains(got, testSecret) {
		t.Errorf("logged %q, which holds a secret", got)
	}
}

// TestServeWithRotatedAndPublicKeys runs relay with a current and a
// previous secret, an Ed25519 public key and two publish keys, and checks
// each end to end; the publish command takes a key.
func TestServeWithRotatedAndPublicKeys(t *testing.T) {
	edPriv, pemText := edPEM(t)
	const previous = "the-previous-secret-0123456789"
	k1, k2 := strings.Repeat("a1", 20), strings.Repeat("b2", 20)
	inst := start(t, map[string]string{
		"RELAY_JWT_SECRET":          testSecret,
		"RELAY_JWT_SECRET_PREVIOUS": previous,
		"RELAY_JWT_PUBLIC_KEY":      pemText,
		"RELAY_PUBLISH_KEYS":        "django=" + k1 + ":user_*_notifications; django2=" + k2 + ":user_*_notifications",
	})
	exp := time.Now().Add(time.Hour).Unix()
	sign := func(method jwt.SigningMethod, key any) string {
		tok, err := jwt.NewWithClaims(method, jwt.MapClaims{"sub": "1", "exp": exp}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	streams := map[string]*stream{
		"current secret":  openStream(t, inst.url+"/events/notifications?token="+sign(jwt.SigningMethodHS256, []byte(testSecret))),
		"previous secret": openStream(t, inst.url+"/events/notifications?token="+sign(jwt.SigningMethodHS256, []byte(previous))),
		"EdDSA":           openStream(t, inst.url+"/events/notifications?token="+sign(jwt.SigningMethodEdDSA, edPriv)),
	}
	env := map[string]string{"RELAY_URL": inst.url, "RELAY_PUBLISH_KEY": k2}
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{
		{"--key", k1, "--data", `{"by":"django"}`},
		{"--data", `{"by":"django2"}`}, // RELAY_PUBLISH_KEY
	} {
		var out bytes.Buffer
		cmd := append([]string{"relay", "publish", "--channel", "user_1_notifications", "--type", "notification"}, args...)
		if err := run(context.Background(), cmd, getenv, &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for name, s := range streams {
			if got := s.next(t); !strings.Contains(out.String(), got["id"].(string)) {
				t.Errorf("%s: got %v, want the event publish printed, %s", name, got, out.String())
			}
		}
	}
	err := run(context.Background(), []string{"relay", "publish", "--channel", "c", "--type", "t", "--token", "x"}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("publish with --token and a key: got %v, want a refusal", err)
	}
	env["RELAY_PUBLISH_KEY"] = strings.Repeat("z", 40)
	err = run(context.Background(), []string{"relay", "publish", "--channel", "user_1_notifications", "--type", "t"}, getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), env["RELAY_PUBLISH_KEY"]) {
		t.Errorf("publish with a wrong key: got %v, want a 401 that does not quote the key", err)
	}
}

// TestServePublicKeyOnlyIsNotDev: a public key is a production
// configuration: no dev mode, no demo tokens, and HS256 tokens refused.
func TestServePublicKeyOnlyIsNotDev(t *testing.T) {
	_, pemText := edPEM(t)
	inst := start(t, map[string]string{"RELAY_JWT_PUBLIC_KEY": pemText})
	if out := inst.out.String(); strings.Contains(out, "dev mode") {
		t.Errorf("startup output %q announces dev mode", out)
	}
	resp, err := http.Post(inst.url+"/api/dev/token", "application/json", strings.NewReader(`{"user":"bob"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("demo token: got 200, want none outside dev mode")
	}
	req, _ := http.NewRequest(http.MethodGet, inst.url+"/events/notifications?token="+mint(t, auth.Identity{UserID: "1"}), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HS256 token without RELAY_JWT_SECRET: got %d, want 401", resp.StatusCode)
	}
}
