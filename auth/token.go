// Package auth verifies the JWTs that relay's users' backends mint and says
// which channels an identity may subscribe and publish to. It imports
// net/http only in request.go, to find the token in a request.
package auth

import (
	"errors"
	"fmt"
	"log/slog"
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
	// Expires is the token's exp: streams must end when it passes.
	Expires time.Time
}

// LogValue logs the user id and name only: never the token or grants.
func (id *Identity) LogValue() slog.Value {
	if id == nil {
		return slog.StringValue("anonymous")
	}
	return slog.GroupValue(slog.String("user_id", id.UserID), slog.String("name", id.Name))
}

// Verifier checks HS256 tokens against one secret and caches the tokens it
// has verified. It is safe for concurrent use.
//
// Verify allows no clock leeway: a token is refused from the second its exp
// is reached, on a cache hit as on a fresh parse, so relay and the backend
// should keep their clocks synchronised (NTP) and backends should mint tokens
// that outlive the request by more than their clock skew.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
	cache  *tokenCache      // nil disables caching
	now    func() time.Time // the clock; tests replace it
}

// NewVerifier returns a Verifier for tokens signed with secret using HS256.
// The secret must be at least MinSecretLen bytes.
func NewVerifier(secret []byte) (*Verifier, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	v := &Verifier{
		secret: append([]byte(nil), secret...),
		cache:  newTokenCache(cacheSize),
		now:    time.Now,
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.clock),
	)
	return v, nil
}

func (v *Verifier) clock() time.Time { return v.now() }

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("auth: the JWT secret is %d bytes, want at least %d: set RELAY_JWT_SECRET to the key "+
			"your backend signs tokens with (for djangorestframework-simplejwt, its SIGNING_KEY, by default Django's SECRET_KEY)",
			len(secret), MinSecretLen)
	}
	return nil
}

// Verify checks token's signature (HS256 only), its exp (required) and its
// claims, and returns the Identity it carries. Errors wrap ErrTokenExpired
// when exp has passed and ErrUnauthenticated otherwise; their messages say
// what to do next and never contain the token.
func (v *Verifier) Verify(token string) (*Identity, error) {
	switch {
	case token == "":
		return nil, unauthenticated("no token: send one as \"Authorization: Bearer <token>\", " +
			"the token query parameter or the relay_token cookie")
	case len(token) > MaxTokenLen:
		return nil, unauthenticated("token is %d bytes, over the %d-byte limit", len(token), MaxTokenLen)
	}
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
	tok, err := v.parser.ParseWithClaims(token, c, v.key)
	if err == nil {
		var id *Identity
		if id, err = c.identity(); err == nil {
			return id, nil
		}
	}
	return nil, v.explain(tok, c, err)
}

func (v *Verifier) key(*jwt.Token) (any, error) { return v.secret, nil }

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
		return unauthenticated("token has no alg header: sign tokens with HS256 and RELAY_JWT_SECRET")
	case tok != nil && algorithm(tok) != jwt.SigningMethodHS256.Alg():
		return unauthenticated("token is signed with %q: sign tokens with HS256 and RELAY_JWT_SECRET", clip(algorithm(tok)))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthenticated("signature does not match: set RELAY_JWT_SECRET to the key your backend signs tokens with")
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
