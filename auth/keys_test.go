package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Test keys, generated once: RSA generation takes a while under -race.
var (
	rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
		var ks [2]*rsa.PrivateKey
		for i := range ks {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			ks[i] = k
		}
		return ks
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func rsaKey(i int) *rsa.PrivateKey { return rsaKeys()[i] }

// pemOf encodes a public key as a PKIX "PUBLIC KEY" block.
func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// signKid signs c with method and key, with a kid header when kid is set.
func signKid(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// verifierWith returns a Verifier for keys whose clock reads t0.
func verifierWith(t testing.TB, keys Keys) *Verifier {
	t.Helper()
	v, err := NewVerifierWith(keys)
	if err != nil {
		t.Fatalf("NewVerifierWith: %v", err)
	}
	v.now = (&testClock{t: t0}).now
	return v
}

// TestVerifyKeysRefuseForgeries runs every forgery against each kind of
// configuration: the allowlist follows from the keys, and each token is
// checked against the keys of its own algorithm only.
func TestVerifyKeysRefuseForgeries(t *testing.T) {
	good := jwt.MapClaims{"sub": "42", "exp": unix(time.Hour)}
	rsaPub, edPub := &rsaKey(0).PublicKey, edKey().Public().(ed25519.PublicKey)
	rsaPEM := pemOf(t, rsaPub)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	configs := []struct {
		name string
		keys Keys
	}{
		{"HS256", Keys{Secrets: [][]byte{testSecret}}},
		{"RS256", Keys{Public: []PublicKey{{Key: rsaPub}}}},
		{"EdDSA", Keys{Public: []PublicKey{{Key: edPub}}}},
		{"all", Keys{Secrets: [][]byte{testSecret}, Public: []PublicKey{{Key: rsaPub}, {Key: edPub}}}},
	}
	type forgery struct {
		name, token, wantMsg string
		wantErr              error
	}
	forgeries := []forgery{
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), wantMsg: `signed with "none"`},
		{name: "HS256 with the RSA public key PEM as secret", token: sign(t, jwt.SigningMethodHS256, rsaPEM, good)},
		{name: "HS256 with the Ed25519 public key as secret", token: sign(t, jwt.SigningMethodHS256, []byte(edPub), good)},
		{name: "HS256 wrong secret", token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-long!"), good)},
		{name: "HS384", token: sign(t, jwt.SigningMethodHS384, testSecret, good), wantMsg: `signed with "HS384"`},
		{name: "HS512", token: sign(t, jwt.SigningMethodHS512, testSecret, good), wantMsg: `signed with "HS512"`},
		{name: "RS256 other key", token: sign(t, jwt.SigningMethodRS256, rsaKey(1), good)},
		{name: "RS512 right key", token: sign(t, jwt.SigningMethodRS512, rsaKey(0), good), wantMsg: `signed with "RS512"`},
		{name: "PS256 right key", token: sign(t, jwt.SigningMethodPS256, rsaKey(0), good), wantMsg: `signed with "PS256"`},
		{name: "ES256", token: sign(t, jwt.SigningMethodES256, ecKey, good), wantMsg: `signed with "ES256"`},
		{name: "EdDSA other key", token: sign(t, jwt.SigningMethodEdDSA, mustEdKey(t), good)},
	}
	// Valid signatures on bad claims, one per algorithm of the config.
	badClaims := []struct {
		name    string
		claims  jwt.MapClaims
		wantErr error
		wantMsg string
	}{
		{"no exp", jwt.MapClaims{"sub": "42"}, ErrUnauthenticated, "no exp"},
		{"past exp", jwt.MapClaims{"sub": "42", "exp": unix(-time.Minute)}, ErrTokenExpired, "expired at"},
		{"future nbf", jwt.MapClaims{"sub": "42", "exp": unix(time.Hour), "nbf": unix(time.Minute)}, ErrUnauthenticated, "not valid before"},
		{"refresh token", jwt.MapClaims{"token_type": "refresh", "user_id": 42, "exp": unix(time.Hour)}, ErrUnauthenticated, "send the access token"},
	}
	signers := map[string]func(jwt.MapClaims) string{
		AlgHS256: func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, c) },
		AlgRS256: func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, rsaKey(0), c) },
		AlgEdDSA: func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodEdDSA, edKey(), c) },
	}
	for _, cfg := range configs {
		v := verifierWith(t, cfg.keys)
		cases := append([]forgery(nil), forgeries...)
		for alg, signer := range signers {
			if !v.keys.hasAlg(alg) {
				// A genuine token of an algorithm the config has no key for.
				cases = append(cases, forgery{name: alg + " not configured", token: signer(good), wantMsg: `signed with "` + alg + `"`})
				continue
			}
			for _, bc := range badClaims {
				cases = append(cases, forgery{name: alg + " " + bc.name, token: signer(bc.claims), wantErr: bc.wantErr, wantMsg: bc.wantMsg})
			}
		}
		for _, f := range cases {
			t.Run(cfg.name+"/"+f.name, func(t *testing.T) {
				got, err := v.Verify(f.token)
				if got != nil {
					t.Fatalf("Verify: got identity %q, want an error", got.UserID)
				}
				want := f.wantErr
				if want == nil {
					want = ErrUnauthenticated
				}
				checkErr(t, f.token, err, want, f.wantMsg)
			})
		}
		// And the genuine tokens of its algorithms do verify.
		for _, alg := range v.Algorithms() {
			if id, err := v.Verify(signers[alg](good)); err != nil || id.UserID != "42" {
				t.Errorf("%s: genuine %s token: got %v, %v, want user 42", cfg.name, alg, id, err)
			}
		}
	}
}

func mustEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyRotatedSecrets(t *testing.T) {
	current, previous := testSecret, []byte("the-previous-secret-0123456789ab")
	v := verifierWith(t, Keys{Secrets: [][]byte{current, previous}})
	for name, key := range map[string][]byte{"current": current, "previous": previous} {
		tok := sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "7", "exp": unix(time.Hour)})
		if id, err := v.Verify(tok); err != nil || id.UserID != "7" {
			t.Errorf("token signed with the %s secret: got %v, %v, want user 7", name, id, err)
		}
	}
	retired := sign(t, jwt.SigningMethodHS256, []byte("a-retired-secret-0123456789abcde"), jwt.MapClaims{"sub": "7", "exp": unix(time.Hour)})
	_, err := v.Verify(retired)
	checkErr(t, retired, err, ErrUnauthenticated, "signature does not match")
}

func TestVerifyKid(t *testing.T) {
	a, b := rsaKey(0), rsaKey(1)
	v := verifierWith(t, Keys{Public: []PublicKey{{ID: "a", Key: &a.PublicKey}, {ID: "b", Key: &b.PublicKey}}})
	claims := jwt.MapClaims{"sub": "9", "exp": unix(time.Hour)}
	tests := []struct {
		name string
		key  *rsa.PrivateKey
		kid  string
		ok   bool
	}{
		{"kid a, key a", a, "a", true},
		{"kid b, key b", b, "b", true},
		{"kid a names the key, signed with b", b, "a", false},
		{"no kid, key b", b, "", true},
		{"unknown kid, key b", b, "zzz", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signKid(t, jwt.SigningMethodRS256, tt.key, tt.kid, claims)
			id, err := v.Verify(tok)
			if tt.ok {
				if err != nil || id.UserID != "9" {
					t.Errorf("got %v, %v, want user 9", id, err)
				}
				return
			}
			checkErr(t, tok, err, ErrUnauthenticated, "signature does not match any RS256 key")
		})
	}
}

func TestNewVerifierWithRefuses(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name    string
		keys    Keys
		wantMsg string
	}{
		{"nothing", Keys{}, "no key to verify tokens with"},
		{"publish keys only", Keys{Publish: []PublishKey{testPublishKey("django", "a")}}, "no key to verify tokens with"},
		{"short secret", Keys{Secrets: [][]byte{[]byte("short")}}, "HS256 secret 1"},
		{"short previous secret", Keys{Secrets: [][]byte{testSecret, []byte("short")}}, "HS256 secret 2"},
		{"RSA 1024", Keys{Public: []PublicKey{{Key: &small.PublicKey}}}, "RSA key of 1024 bits"},
		{"ECDSA", Keys{Public: []PublicKey{{ID: "e1", Key: &ec.PublicKey}}}, `public key 1 (kid "e1")`},
		{"short Ed25519", Keys{Public: []PublicKey{{Key: ed25519.PublicKey("short")}}}, "Ed25519 key of 5 bytes"},
		{"short publish key", Keys{Secrets: [][]byte{testSecret}, Publish: []PublishKey{{Name: "x", Secret: "abc", Channels: []string{"*"}}}}, "at least 32"},
		{"publish key without channels", Keys{Secrets: [][]byte{testSecret}, Publish: []PublishKey{{Name: "x", Secret: strings.Repeat("a", 32)}}}, "covers no channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifierWith(tt.keys)
			if err == nil {
				t.Fatalf("got a Verifier accepting %v, want an error", v.Algorithms())
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParsePublicKeys(t *testing.T) {
	rsaPub, edPub := &rsaKey(0).PublicKey, edKey().Public()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaPub)})
	privDER, _ := x509.MarshalPKCS8PrivateKey(edKey())
	private := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	tests := []struct {
		name     string
		text     []byte
		wantAlgs []string
		wantMsg  string
	}{
		{name: "RSA PKIX", text: pemOf(t, rsaPub), wantAlgs: []string{AlgRS256}},
		{name: "RSA PKCS1", text: pkcs1, wantAlgs: []string{AlgRS256}},
		{name: "Ed25519", text: pemOf(t, edPub), wantAlgs: []string{AlgEdDSA}},
		{name: "two keys", text: append(pemOf(t, edPub), pemOf(t, rsaPub)...), wantAlgs: []string{AlgEdDSA, AlgRS256}},
		{name: "private key", text: private, wantMsg: "this is a private key"},
		{name: "certificate", text: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), wantMsg: `"CERTIFICATE" block`},
		{name: "not PEM", text: []byte("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"), wantMsg: "no PEM block"},
		{name: "corrupt", text: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}), wantMsg: "PEM block 1: PUBLIC KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParsePublicKeys(tt.text)
			if tt.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("got %d keys, error %v, want an error containing %q", len(keys), err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tt.wantAlgs) {
				t.Fatalf("got %d keys, want %d", len(keys), len(tt.wantAlgs))
			}
			for i, k := range keys {
				if alg, _ := k.alg(); alg != tt.wantAlgs[i] {
					t.Errorf("key %d: got %s, want %s", i, alg, tt.wantAlgs[i])
				}
			}
		})
	}
}

// jwkOf returns the JWK members of a public key.
func jwkOf(pub any) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(k)}
	}
	panic("jwkOf: unsupported key")
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestParseJWKS(t *testing.T) {
	rsaJWK, edJWK := jwkOf(&rsaKey(0).PublicKey), jwkOf(edKey().Public())
	tests := []struct {
		name    string
		keys    []map[string]any
		wantN   int
		wantMsg string
	}{
		{name: "RSA and Ed25519", keys: []map[string]any{with(rsaJWK, "kid", "r1", "alg", "RS256", "use", "sig"), with(edJWK, "kid", "e1", "alg", "EdDSA")}, wantN: 2},
		{name: "no alg", keys: []map[string]any{rsaJWK, edJWK}, wantN: 2},
		{name: "empty", keys: []map[string]any{}, wantMsg: "holds no keys"},
		{name: "oct", keys: []map[string]any{{"kty": "oct", "k": "c2VjcmV0"}}, wantMsg: "symmetric (oct) key"},
		{name: "EC", keys: []map[string]any{{"kty": "EC", "crv": "P-256", "kid": "ec"}}, wantMsg: `key 1 (kid "ec"): has kty "EC"`},
		{name: "RSA for RS512", keys: []map[string]any{with(rsaJWK, "alg", "RS512")}, wantMsg: `alg "RS512"`},
		{name: "RSA for HS256", keys: []map[string]any{with(rsaJWK, "alg", "HS256")}, wantMsg: `alg "HS256"`},
		{name: "encryption key", keys: []map[string]any{with(rsaJWK, "use", "enc")}, wantMsg: `use "enc"`},
		{name: "private key", keys: []map[string]any{with(edJWK, "d", "AAAA")}, wantMsg: "is a private key"},
		{name: "X25519", keys: []map[string]any{with(edJWK, "crv", "X25519")}, wantMsg: `OKP "X25519"`},
		{name: "bad n", keys: []map[string]any{with(rsaJWK, "n", "!!")}, wantMsg: "base64url"},
		{name: "even exponent", keys: []map[string]any{with(rsaJWK, "e", "Ag")}, wantMsg: "exponent 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _ := json.Marshal(map[string]any{"keys": tt.keys})
			keys, err := ParseJWKS(data)
			if tt.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("got %d keys, error %v, want an error containing %q", len(keys), err, tt.wantMsg)
				}
				return
			}
			if err != nil || len(keys) != tt.wantN {
				t.Fatalf("got %d keys, %v, want %d", len(keys), err, tt.wantN)
			}
		})
	}
	if _, err := ParseJWKS([]byte("not json")); err == nil {
		t.Error("ParseJWKS(not json): got nil error")
	}

	// A key set read from JSON verifies the tokens of its keys, by kid.
	data, _ := json.Marshal(map[string]any{"keys": []any{with(rsaJWK, "kid", "r1"), with(edJWK, "kid", "e1")}})
	keys, err := ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	v := verifierWith(t, Keys{Public: keys})
	for _, tok := range []string{
		signKid(t, jwt.SigningMethodRS256, rsaKey(0), "r1", jwt.MapClaims{"sub": "1", "exp": unix(time.Hour)}),
		signKid(t, jwt.SigningMethodEdDSA, edKey(), "e1", jwt.MapClaims{"sub": "1", "exp": unix(time.Hour)}),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("token of a JWKS key: %v", err)
		}
	}
}

// TestForgeryMessagesNameKeys checks that refusals say what to configure.
func TestForgeryMessagesNameKeys(t *testing.T) {
	v := verifierWith(t, Keys{Public: []PublicKey{{Key: &rsaKey(0).PublicKey}}})
	tok := hs256(t, jwt.MapClaims{"sub": "1", "exp": unix(time.Hour)})
	_, err := v.Verify(tok)
	checkErr(t, tok, err, ErrUnauthenticated, `signed with "HS256": relay accepts RS256 tokens (sign them RS256/EdDSA with the keys of RELAY_JWT_PUBLIC_KEY`)
	if errors.Is(err, ErrForbidden) {
		t.Errorf("error %v wraps ErrForbidden", err)
	}
}
