package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// The algorithms a Verifier may accept. Which of them it does accept follows
// from the keys it is given, never from a token: an HS256 secret admits
// HS256, an RSA key RS256, an Ed25519 key EdDSA. Nothing else (none, HS384,
// PS256, ES256…) is ever accepted.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// MinRSABits is the smallest RSA modulus accepted for RS256 keys.
const MinRSABits = 2048

// Keys are what a Verifier trusts. At least one JWT key (a secret or a public
// key) is required.
type Keys struct {
	// Secrets verify HS256 tokens, each at least MinSecretLen bytes. Several
	// at once let a secret be rotated without logging anyone out: the new one
	// and, until the tokens signed with it have expired, the old one.
	Secrets [][]byte
	// Public verify RS256 (RSA, at least MinRSABits) and EdDSA (Ed25519)
	// tokens; see ParsePublicKeys and ParseJWKS.
	Public []PublicKey
	// Publish are the publish keys: long-lived credentials for backends that
	// may only publish (see VerifyPublisher).
	Publish []PublishKey
}

// PublicKey is one public key that verifies tokens.
type PublicKey struct {
	// ID is the key's kid. A token whose kid header names a configured key is
	// verified with that key only; other tokens with every key of their alg.
	ID string
	// Key is an *rsa.PublicKey (RS256) or an ed25519.PublicKey (EdDSA).
	Key crypto.PublicKey
}

// alg returns the algorithm k verifies, or an error for a key relay does not
// use.
func (k PublicKey) alg() (string, error) {
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		if key == nil || key.N == nil || key.N.BitLen() < MinRSABits {
			bits := 0
			if key != nil && key.N != nil {
				bits = key.N.BitLen()
			}
			return "", fmt.Errorf("RSA key of %d bits: use at least %d", bits, MinRSABits)
		}
		return AlgRS256, nil
	case ed25519.PublicKey:
		if len(key) != ed25519.PublicKeySize {
			return "", fmt.Errorf("Ed25519 key of %d bytes, want %d", len(key), ed25519.PublicKeySize)
		}
		return AlgEdDSA, nil
	}
	return "", fmt.Errorf("a %T: relay verifies RS256 (RSA) and EdDSA (Ed25519) tokens only", k.Key)
}

// verifyKey is one key of a Verifier's ring: its alg, its kid and the key
// in the form jwt's signing method takes.
type verifyKey struct {
	alg, id string
	key     jwt.VerificationKey
}

// keyring holds a Verifier's JWT keys, grouped by algorithm.
type keyring struct {
	algs []string // the allowlist, in a fixed order
	keys map[string][]verifyKey
}

func newKeyring(k Keys) (*keyring, error) {
	r := &keyring{keys: make(map[string][]verifyKey)}
	for i, s := range k.Secrets {
		if err := checkSecret(s); err != nil {
			return nil, fmt.Errorf("HS256 secret %d: %w", i+1, err)
		}
		r.add(verifyKey{alg: AlgHS256, key: append([]byte(nil), s...)})
	}
	for i, pk := range k.Public {
		alg, err := pk.alg()
		if err != nil {
			return nil, fmt.Errorf("auth: public key %d%s: %w", i+1, kidNote(pk.ID), err)
		}
		r.add(verifyKey{alg: alg, id: pk.ID, key: pk.Key})
	}
	if len(r.keys) == 0 {
		return nil, errors.New("auth: no key to verify tokens with: " + setSecret)
	}
	for _, alg := range []string{AlgHS256, AlgRS256, AlgEdDSA} {
		if len(r.keys[alg]) > 0 {
			r.algs = append(r.algs, alg)
		}
	}
	return r, nil
}

func (r *keyring) add(k verifyKey) { r.keys[k.alg] = append(r.keys[k.alg], k) }

// forToken returns the keys that may verify tok: those of its alg, narrowed
// to the one whose kid the token names when one does. A kid no key carries
// narrows nothing (simplejwt and others set kids relay was not told of).
func (r *keyring) forToken(tok *jwt.Token) (any, error) {
	keys := r.keys[algorithm(tok)]
	if kid, _ := tok.Header["kid"].(string); kid != "" {
		for _, k := range keys {
			if k.id == kid {
				return k.key, nil
			}
		}
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k.key
	}
	if len(set.Keys) == 0 {
		// Unreachable: jwt checks the allowlist before asking for keys.
		return nil, unauthenticated("no %s key is configured", clip(algorithm(tok)))
	}
	return set, nil
}

// accepted describes the allowlist for error messages: "HS256 or RS256".
func (r *keyring) accepted() string {
	return strings.Join(r.algs, " or ")
}

// setSecret says what to configure; the messages of app and auth share it.
const setSecret = "set RELAY_JWT_SECRET to the key your backend signs tokens with (for djangorestframework-simplejwt, " +
	"its SIGNING_KEY, by default Django's SECRET_KEY), or RELAY_JWT_PUBLIC_KEY / RELAY_JWT_JWKS to the public key of RS256 or EdDSA tokens"

func kidNote(kid string) string {
	if kid == "" {
		return ""
	}
	return fmt.Sprintf(" (kid %q)", clip(kid))
}

// ParsePublicKeys reads the PEM blocks of text: each a PUBLIC KEY (PKIX, RSA
// or Ed25519) or an RSA PUBLIC KEY (PKCS #1). Several blocks are several
// keys, for rotation. Text without a block, a private key or a certificate
// is refused with an error that says what to give instead.
func ParsePublicKeys(text []byte) ([]PublicKey, error) {
	var keys []PublicKey
	for n := 1; ; n++ {
		block, rest := pem.Decode(text)
		if block == nil {
			break
		}
		text = rest
		key, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("auth: PEM block %d: %w", n, err)
		}
		pk := PublicKey{Key: key}
		if _, err := pk.alg(); err != nil {
			return nil, fmt.Errorf("auth: PEM block %d: %w", n, err)
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no PEM block found: give the public key as it starts, \"-----BEGIN PUBLIC KEY-----\"")
	}
	return keys, nil
}

func parsePEMBlock(b *pem.Block) (crypto.PublicKey, error) {
	switch {
	case b.Type == "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC KEY: %v", err)
		}
		return k, nil
	case b.Type == "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("RSA PUBLIC KEY: %v", err)
		}
		return k, nil
	case strings.Contains(b.Type, "PRIVATE KEY"):
		return nil, errors.New("this is a private key: give relay the public key only " +
			"(openssl pkey -in private.pem -pubout), and keep the private key with the backend that signs")
	}
	return nil, fmt.Errorf("a %q block: want PUBLIC KEY or RSA PUBLIC KEY", clip(b.Type))
}

// jwk is one key of a JSON Web Key Set (RFC 7517), as far as relay reads it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	D   string `json:"d"` // present only in a private key, which is refused
}

// ParseJWKS reads a JSON Web Key Set ({"keys":[…]}) of RSA keys (kty RSA,
// alg RS256 or none) and Ed25519 keys (kty OKP, crv Ed25519, alg EdDSA or
// none). Every key must be usable: a key relay would skip (a symmetric key,
// an EC key, a private key, an encryption key, a key for another alg) is an
// error rather than a silent gap in what is trusted.
func ParseJWKS(data []byte) ([]PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("auth: JWKS is not a JSON object {\"keys\": […]}: %v", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("auth: JWKS holds no keys")
	}
	keys := make([]PublicKey, 0, len(set.Keys))
	for i, k := range set.Keys {
		pk, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS key %d%s: %w", i+1, kidNote(k.Kid), err)
		}
		if _, err := pk.alg(); err != nil {
			return nil, fmt.Errorf("auth: JWKS key %d%s: %w", i+1, kidNote(k.Kid), err)
		}
		keys = append(keys, pk)
	}
	return keys, nil
}

func (k jwk) publicKey() (PublicKey, error) {
	switch {
	case k.D != "":
		return PublicKey{}, errors.New("is a private key: publish only the public part")
	case k.Use != "" && k.Use != "sig":
		return PublicKey{}, fmt.Errorf("has use %q: want sig", clip(k.Use))
	}
	switch k.Kty {
	case "RSA":
		if k.Alg != "" && k.Alg != AlgRS256 {
			return PublicKey{}, fmt.Errorf("has alg %q: relay verifies RSA keys with RS256 only", clip(k.Alg))
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return PublicKey{}, errors.New("n and e must be base64url (no padding) big-endian integers")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return PublicKey{}, fmt.Errorf("has exponent %d: want an odd exponent of at least 3", exp)
		}
		return PublicKey{ID: k.Kid, Key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}}, nil
	case "OKP":
		if k.Crv != "Ed25519" || k.Alg != "" && k.Alg != AlgEdDSA {
			return PublicKey{}, fmt.Errorf("is OKP %q with alg %q: relay verifies Ed25519 keys with EdDSA only", clip(k.Crv), clip(k.Alg))
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			return PublicKey{}, errors.New("x must be base64url (no padding)")
		}
		return PublicKey{ID: k.Kid, Key: ed25519.PublicKey(x)}, nil
	case "oct":
		return PublicKey{}, errors.New("is a symmetric (oct) key: give HS256 secrets as RELAY_JWT_SECRET, never in a key set")
	}
	return PublicKey{}, fmt.Errorf("has kty %q: relay verifies RSA (RS256) and OKP Ed25519 (EdDSA) keys only", clip(k.Kty))
}

// hasAlg reports whether the ring accepts alg.
func (r *keyring) hasAlg(alg string) bool { return slices.Contains(r.algs, alg) }
