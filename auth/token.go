// Package auth verifies the JWTs that relay's users' backends mint and says
// which channels an identity may subscribe and publish to. It imports
// net/http only in request.go, to find the token in a request.
package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/relaydev/relay/events"
)

// MinSecretLen is the shortest HS256 secret accepted, in bytes.
const MinSecretLen = 16

// MaxTokenLen is the longest token Verify reads, in bytes: far above any
// real token, it bounds the work and the cache's memory.
const MaxTokenLen = 8 << 10

// Identity is who a verified token speaks for and what it grants. An
// Identity returned by Verify may be shared with other callers presenting
// the same token: treat it as read-only.
type Identity struct {
	UserID string // sub, else simplejwt's user_id
	Name   string
	// Projects are the project ids the user belongs to, as decimal strings
	// for numeric ids. Membership grants subscribing to project_{id}_… .
	Projects []string
	// Subscribe and Publish are channel patterns ('*' glob) the token grants.
	Subscribe, Publish []string
	// Expires is the token's exp: streams must end when it passes. It is
	// zero for a publish key, which never expires and never streams.
	Expires time.Time
	// PublishKey is the name of the publish key this Identity stands for, ""
	// for a token. Such an Identity has no user and may only publish.
	PublishKey string
}

// LogValue logs the user id and name only: never the token or grants.
func (id *Identity) LogValue() slog.Value {
	if id == nil {
		return slog.StringValue("anonymous")
	}
	if id.PublishKey != "" {
		return slog.GroupValue(slog.String("publish_key", id.PublishKey))
	}
	return slog.GroupValue(slog.String("user_id", id.UserID), slog.String("name", id.Name))
}

// Verifier checks tokens against the keys it was made with and caches the
// tokens it has verified. It is safe for concurrent use.
//
// Verify allows no clock leeway: a token is refused from the second its exp
// is reached, on a cache hit as on a fresh parse, so relay and the backend
// should keep their clocks synchronised (NTP) and backends should mint tokens
// that outlive the request by more than their clock skew.
type Verifier struct {
	keys    *keyring
	publish *publishKeys
	parser  *jwt.Parser
	cache   *tokenCache      // nil disables caching
	now     func() time.Time // the clock; tests replace it
}

// NewVerifier returns a Verifier for HS256 tokens signed with secret, which
// must be at least MinSecretLen bytes.
func NewVerifier(secret []byte) (*Verifier, error) {
	return NewVerifierWith(Keys{Secrets: [][]byte{secret}})
}

// NewVerifierWith returns a Verifier trusting keys. The algorithms it
// accepts are those of its keys (HS256 for secrets, RS256 for RSA keys,
// EdDSA for Ed25519 keys), and each token is checked only against the keys
// of its own algorithm, so an RSA public key can never serve as an HS256
// secret.
func NewVerifierWith(keys Keys) (*Verifier, error) {
	ring, err := newKeyring(keys)
	if err != nil {
		return nil, err
	}
	pub, err := newPublishKeys(keys.Publish)
	if err != nil {
		return nil, err
	}
	v := &Verifier{keys: ring, publish: pub, cache: newTokenCache(cacheSize), now: time.Now}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(ring.algs),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.clock),
	)
	return v, nil
}

// Algorithms returns the algorithms v accepts, for a start-up log line.
func (v *Verifier) Algorithms() []string { return append([]string(nil), v.keys.algs...) }

func (v *Verifier) clock() time.Time { return v.now() }

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("auth: the JWT secret is %d bytes, want at least %d: set RELAY_JWT_SECRET to the key "+
			"your backend signs tokens with (for djangorestframework-simplejwt, its SIGNING_KEY, by default Django's SECRET_KEY)",
			len(secret), MinSecretLen)
	}
	return nil
}

// Verify checks a subscriber's token: its signature (with the algorithms
// of the configured keys only), its exp (required) and its claims, and
// returns the Identity it carries. A publish key is refused (ErrForbidden):
// it may only publish, through VerifyPublisher. Errors wrap ErrTokenExpired
// when exp has passed, ErrForbidden for a publish key and ErrUnauthenticated
// otherwise; their messages say what to do next and never contain the token.
func (v *Verifier) Verify(token string) (*Identity, error) {
	if err := checkLength(token); err != nil {
		return nil, err
	}
	if looksLikeKey(token) {
		if k := v.publish.match(token); k != nil {
			return nil, fmt.Errorf("verify token: this is publish key %q, which may only publish: "+
				"give browsers and other subscribers a JWT from your backend: %w", k.PublishKey, ErrForbidden)
		}
	}
	return v.verifyJWT(token)
}

// VerifyPublisher checks the credential of a publish request: a publish
// key, whose Identity may publish to the key's channels and has no user, or
// else a token, as Verify does. A credential without dots that matches no
// key is refused as an unknown publish key; the comparison takes the same
// time whichever key, if any, it matches.
func (v *Verifier) VerifyPublisher(token string) (*Identity, error) {
	if err := checkLength(token); err != nil {
		return nil, err
	}
	if !looksLikeKey(token) {
		return v.verifyJWT(token)
	}
	if id := v.publish.match(token); id != nil {
		return id, nil
	}
	if len(v.publish.digests) == 0 {
		return nil, unauthenticated("not a JWT, and no publish key is configured: send a token from your backend, " +
			"or set RELAY_PUBLISH_KEYS and send one of its keys")
	}
	return nil, unauthenticated("matches no publish key: send a key listed in RELAY_PUBLISH_KEYS, or a token from your backend")
}

func checkLength(token string) error {
	switch {
	case token == "":
		return unauthenticated("no token: send one as \"Authorization: Bearer <token>\", " +
			"the token query parameter or the relay_token cookie")
	case len(token) > MaxTokenLen:
		return unauthenticated("token is %d bytes, over the %d-byte limit", len(token), MaxTokenLen)
	}
	return nil
}

// verifyJWT verifies a JWT, through the cache.
func (v *Verifier) verifyJWT(token string) (*Identity, error) {
	if id, ok := v.cache.get(token); ok {
		if !v.now().Before(id.Expires) {
			v.cache.remove(token)
			return nil, expired(id.Expires)
		}
		return id, nil
	}
	id, err := v.parse(token)
	if err != nil {
		return nil, err
	}
	v.cache.put(token, id)
	return id, nil
}

// parse verifies token without the cache.
func (v *Verifier) parse(token string) (*Identity, error) {
	c := new(claims)
	tok, err := v.parser.ParseWithClaims(token, c, v.keys.forToken)
	if err == nil {
		var id *Identity
		if id, err = c.identity(); err == nil {
			return id, nil
		}
	}
	return nil, v.explain(tok, c, err)
}

// explain turns a jwt or claims error into one wrapping ErrUnauthenticated
// or ErrTokenExpired. jwt's own messages never quote the token, but may
// quote a claim value, hence the clipping.
func (v *Verifier) explain(tok *jwt.Token, c *claims, err error) error {
	var bad *claimError
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return err
	case errors.As(err, &bad):
		return unauthenticated("%v: fix the claims your backend mints", bad)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthenticated("%s: send the JWT your backend minted, unchanged", clipTo(err.Error(), 200))
	case tok != nil && algorithm(tok) == "":
		return unauthenticated("token has no alg header: relay accepts %s tokens (%s)", v.keys.accepted(), v.configured())
	case tok != nil && !v.keys.hasAlg(algorithm(tok)):
		return unauthenticated("token is signed with %q: relay accepts %s tokens (%s)",
			clip(algorithm(tok)), v.keys.accepted(), v.configured())
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable):
		if algorithm(tok) == AlgHS256 {
			return unauthenticated("signature does not match: set RELAY_JWT_SECRET to the key your backend signs tokens with")
		}
		return unauthenticated("signature does not match any %s key: set RELAY_JWT_PUBLIC_KEY or RELAY_JWT_JWKS "+
			"to the public key of the private key your backend signs with", clip(algorithm(tok)))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return unauthenticated("token has no exp: mint tokens that expire")
	case errors.Is(err, jwt.ErrTokenExpired) && c.ExpiresAt != nil:
		return expired(c.ExpiresAt.Time)
	case errors.Is(err, jwt.ErrTokenNotValidYet) && c.NotBefore != nil:
		return unauthenticated("token is not valid before %s: check the clocks of relay and your backend",
			c.NotBefore.UTC().Format(time.RFC3339))
	}
	return unauthenticated("%s: get a new token from your backend", clipTo(err.Error(), 200))
}

// configured says where each accepted algorithm's keys come from.
func (v *Verifier) configured() string {
	var where []string
	if v.keys.hasAlg(AlgHS256) {
		where = append(where, "HS256 with RELAY_JWT_SECRET")
	}
	if v.keys.hasAlg(AlgRS256) || v.keys.hasAlg(AlgEdDSA) {
		where = append(where, "RS256/EdDSA with the keys of RELAY_JWT_PUBLIC_KEY or RELAY_JWT_JWKS")
	}
	return "sign them " + strings.Join(where, ", or ")
}

// algorithm returns the alg header of a parsed token, or "" if none.
func algorithm(tok *jwt.Token) string {
	alg, _ := tok.Header["alg"].(string)
	return alg
}

// Mint returns an HS256 token for id that expires after ttl, with the claims
// Verify reads: sub, name, projects (numbers when every id is numeric, else
// strings), subscribe, publish, iat and exp. id.Expires is ignored. exp has
// one-second precision. It serves the "relay token" dev command and tests;
// production tokens come from the users' backends.
func Mint(secret []byte, id Identity, ttl time.Duration) (string, error) {
	if err := checkSecret(secret); err != nil {
		return "", err
	}
	if err := checkMintable(id, ttl); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	projects, err := marshalProjects(id.Projects)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	now := time.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   id.UserID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Name:     id.Name,
		Projects: projects,
	}
	if c.Subscribe, err = marshalPatterns(id.Subscribe); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if c.Publish, err = marshalPatterns(id.Publish); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// checkMintable refuses what Verify would refuse in a minted token.
func checkMintable(id Identity, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("ttl %v is not positive: %w", ttl, events.ErrInvalid)
	}
	if err := events.ValidateID("user", id.UserID); err != nil {
		return err
	}
	for _, p := range id.Projects {
		if err := events.ValidateID("project", p); err != nil {
			return err
		}
	}
	for _, p := range append(append([]string(nil), id.Subscribe...), id.Publish...) {
		if err := events.ValidatePattern(p); err != nil {
			return err
		}
	}
	return nil
}
