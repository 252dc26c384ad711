package transport_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/transport"
)

// startKeyedRelay is startRelay with a Verifier trusting keys instead of the
// harness's one secret.
func startKeyedRelay(t *testing.T, st string, keys auth.Keys) *relay {
	t.Helper()
	v, err := auth.NewVerifierWith(keys)
	if err != nil {
		t.Fatal(err)
	}
	return startRelay(t, withStore(st), withAuth(v))
}

// A backend's publish keys: django and its rotation django2 cover the same
// channels, as while a key is being replaced; cron covers one channel.
var (
	djangoKey  = auth.PublishKey{Name: "django", Secret: strings.Repeat("d1", 32), Channels: []string{"project_*", "user_*_notifications"}}
	django2Key = auth.PublishKey{Name: "django2", Secret: strings.Repeat("e2", 32), Channels: []string{"project_*", "user_*_notifications"}}
	cronKey    = auth.PublishKey{Name: "cron", Secret: strings.Repeat("c_", 20), Channels: []string{"jobs"}}
)

// TestPublishKeys: a publish key publishes to its channels (both keys of a
// rotation), is refused elsewhere (403) and everywhere but publishing, and
// a wrong key is 401.
func TestPublishKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startKeyedRelay(t, st, auth.Keys{Secrets: [][]byte{secret}, Publish: []auth.PublishKey{djangoKey, django2Key, cronKey}})
		sub := mustConnect(t, sseKind, q(r.url+"/events", "channel", "project_1_tickets", "token", alice(t)), nil)
		sub.live(t)

		for _, k := range []auth.PublishKey{djangoKey, django2Key} {
			status, out := r.publish(t, k.Secret, `{"channel":"project_1_tickets","type":"ticket.created","data":{"by":"`+k.Name+`"}}`)
			if status != http.StatusOK {
				t.Fatalf("%s: publish to project_1_tickets: got %d %v, want 200", k.Name, status, out)
			}
			got := sub.event(t)
			if got.envID() != out["id"] || got.Env["data"].(map[string]any)["by"] != k.Name {
				t.Errorf("%s: subscriber got %v, want the event %v just published", k.Name, got.Env, out["id"])
			}
		}
		if status, out := r.publish(t, cronKey.Secret, `{"channel":"jobs","type":"done"}`); status != http.StatusOK {
			t.Errorf("cron: publish to jobs: got %d %v, want 200", status, out)
		}

		refused := []struct {
			name, key, body string
			status          int
			code, msg       string
		}{
			{"other channel", djangoKey.Secret, `{"channel":"jobs","type":"x"}`, 403, "forbidden", "may not publish to jobs"},
			{"one event of a batch on another channel", cronKey.Secret,
				`[{"channel":"jobs","type":"x"},{"channel":"project_1_tickets","type":"x"}]`, 403, "forbidden", "event 1"},
			{"wrong key", strings.Repeat("d1", 31) + "d2", `{"channel":"project_1_tickets","type":"x"}`, 401, "unauthorized", "matches no publish key"},
			{"a prefix of a key", djangoKey.Secret[:40], `{"channel":"project_1_tickets","type":"x"}`, 401, "unauthorized", "matches no publish key"},
			{"no credential", "", `{"channel":"project_1_tickets","type":"x"}`, 401, "unauthorized", "no token"},
		}
		for _, tc := range refused {
			status, out := r.publish(t, tc.key, tc.body)
			msg, _ := out["message"].(string)
			if status != tc.status || out["error"] != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("%s: got %d %v, want %d %s saying %q", tc.name, status, out, tc.status, tc.code, tc.msg)
			}
			if tc.key != "" && strings.Contains(msg, tc.key[:16]) {
				t.Errorf("%s: the answer %q quotes the key", tc.name, msg)
			}
		}
		if evs := r.kept(t, "jobs"); len(evs) != 1 {
			t.Errorf("jobs holds %d events, want 1: a refused publish stored something", len(evs))
		}
		sub.close()
		if got := r.kept(t, "project_1_tickets"); len(got) != 2 {
			t.Errorf("project_1_tickets holds %d events, want the 2 accepted", len(got))
		}
	})
}

// TestPublishKeyMayOnlyPublish: wherever a token reads (streams, the
// notifications and presence APIs), a publish key is refused with 403 (SSE,
// HTTP) or close 4003 (WebSocket), whichever channel it names.
func TestPublishKeyMayOnlyPublish(t *testing.T) {
	r := startKeyedRelay(t, memoryStore, auth.Keys{Secrets: [][]byte{secret}, Publish: []auth.PublishKey{djangoKey}})
	key := djangoKey.Secret
	bearer := http.Header{"Authorization": {"Bearer " + key}}
	for _, path := range []string{
		"/events?channel=project_1_tickets",
		"/events?channel=user_1_notifications",
		"/events/notifications",
		"/events/projects/1/tickets",
		"/events/projects/1/presence",
		"/ws/projects/1/tickets/",
	} {
		for _, how := range []string{"query", "header"} {
			url, header := q(r.url+path, "token", key), http.Header(nil)
			if how == "header" {
				url, header = r.url+path, bearer
			}
			t.Run("sse"+path+"/"+how, func(t *testing.T) {
				c, resp, err := connect(t, sseKind, url, header)
				if err != nil {
					t.Fatal(err)
				}
				if c != nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("got a stream or status %d, want 403", statusOf(resp))
				}
				if code := errorJSON(t, resp); code != "forbidden" {
					t.Errorf("error: got %q, want forbidden", code)
				}
			})
			t.Run("ws"+path+"/"+how, func(t *testing.T) {
				conn, resp, err := wsDial(t, url, header)
				if err != nil {
					t.Fatalf("handshake: got %v (status %d), want an upgrade then a close", err, statusOf(resp))
				}
				if code, reason := wsCloseCode(t, conn); code != transport.CloseForbidden {
					t.Errorf("close: got %d %q, want %d", code, reason, transport.CloseForbidden)
				}
			})
		}
	}
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/notifications", ""},
		{http.MethodPost, "/api/notifications/read", `{"all":true}`},
		{http.MethodGet, "/api/projects/1/presence", ""},
		{http.MethodPost, "/api/projects/1/presence", `{"type":"typing","ticket":1,"is_typing":true}`},
	} {
		t.Run(req.method+req.path, func(t *testing.T) {
			hr, _ := http.NewRequest(req.method, r.url+req.path, strings.NewReader(req.body))
			hr.Header.Set("Authorization", "Bearer "+key)
			hr.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status: got %d, want 403", resp.StatusCode)
			}
			if code := errorJSON(t, resp); code != "forbidden" {
				t.Errorf("error: got %q, want forbidden", code)
			}
		})
	}
}

// TestAsymmetricTokens: RS256 tokens (a PEM key) and EdDSA tokens (a JWKS
// key, selected by kid) subscribe over SSE and WebSocket; an HS256 token
// signed with the RSA public key's bytes is refused, whether or not an
// HS256 secret is configured too.
func TestAsymmetricTokens(t *testing.T) {
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaPriv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pemKeys, err := auth.ParsePublicKeys(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": "ed-2026", "alg": "EdDSA", "x": base64.RawURLEncoding.EncodeToString(edPub)}}})
	jwksKeys, err := auth.ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	public := append(pemKeys, jwksKeys...)

	claims := jwt.MapClaims{"sub": "1", "name": "alice", "projects": []int{1}, "exp": time.Now().Add(time.Hour).Unix()}
	signed := func(method jwt.SigningMethod, key any, kid string) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rs256 := signed(jwt.SigningMethodRS256, rsaPriv, "")
	eddsa := signed(jwt.SigningMethodEdDSA, edPriv, "ed-2026")
	confused := signed(jwt.SigningMethodHS256, rsaPEM, "")
	confusedDER := signed(jwt.SigningMethodHS256, der, "")

	for _, cfg := range []struct {
		name string
		keys auth.Keys
	}{
		{"public keys only", auth.Keys{Public: public}},
		{"public keys and a secret", auth.Keys{Secrets: [][]byte{secret}, Public: public}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			r := startKeyedRelay(t, memoryStore, cfg.keys)
			for _, kind := range kinds {
				for name, tok := range map[string]string{"RS256": rs256, "EdDSA": eddsa} {
					t.Run(kind+"/"+name, func(t *testing.T) {
						c := mustConnect(t, kind, q(r.url+"/events", "channel", "project_1_tickets", "token", tok), nil)
						c.live(t)
						// A token that may publish (RS256 here) reaches it.
						pub := signedPublisher(t, jwt.SigningMethodRS256, rsaPriv)
						status, out := r.publish(t, pub, `{"channel":"project_1_tickets","type":"t"}`)
						if status != http.StatusOK {
							t.Fatalf("publish with an RS256 token: got %d %v", status, out)
						}
						if got := c.event(t); got.envID() != out["id"] {
							t.Errorf("got event %v, want %v", got.envID(), out["id"])
						}
						c.close()
					})
				}
				for name, tok := range map[string]string{"HS256 signed with the RSA PEM": confused, "HS256 signed with the RSA DER": confusedDER} {
					t.Run(kind+"/"+name, func(t *testing.T) {
						c, resp, err := connect(t, kind, q(r.url+"/events", "channel", "project_1_tickets", "token", tok), nil)
						switch {
						case err != nil:
							t.Fatal(err)
						case kind == sseKind && (c != nil || resp.StatusCode != http.StatusUnauthorized):
							t.Errorf("got a stream or status %d, want 401", statusOf(resp))
						case kind == wsKind:
							c.ended(t)
							if c.code != transport.CloseUnauthorized {
								t.Errorf("close code: got %d, want %d", c.code, transport.CloseUnauthorized)
							}
						}
					})
				}
			}
			if status, out := r.publish(t, confused, `{"channel":"project_1_tickets","type":"t"}`); status != http.StatusUnauthorized {
				t.Errorf("publish with an HS256 token signed with the RSA PEM: got %d %v, want 401", status, out)
			}
		})
	}
}

// signedPublisher signs a publish-anywhere token with key.
func signedPublisher(t *testing.T, method jwt.SigningMethod, key any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, jwt.MapClaims{"sub": "backend", "publish": "*", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
