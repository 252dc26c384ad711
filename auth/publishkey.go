package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/relaydev/relay/events"
)

// MinPublishKeyLen is the shortest publish key accepted: 32 characters of
// the key alphabet carry at least 128 bits when drawn at random
// (openssl rand -hex 32 gives 64).
const MinPublishKeyLen = 32

// PublishKey is a long-lived credential of a backend that publishes: its
// holder may publish to the channels its patterns cover and do nothing else
// (never subscribe, read notifications or appear in presence). It is sent as
// "Authorization: Bearer <secret>", like a token.
//
// However it is printed (fmt, slog, encoding/json) it shows its name and
// channels only: the secret never reaches a log.
type PublishKey struct {
	// Name identifies the key in logs and errors: letters, digits, '-', '_'.
	Name string
	// Secret is what the backend sends: at least MinPublishKeyLen of
	// letters, digits, '-' and '_' (hex or unpadded base64url), so that it
	// can never be mistaken for a JWT, which always holds dots.
	Secret string
	// Channels are the channel patterns ('*' glob) the key may publish to.
	Channels []string
}

func (k PublishKey) String() string             { return "publish key " + k.Name }
func (k PublishKey) GoString() string           { return k.String() }
func (k PublishKey) LogValue() slog.Value       { return slog.StringValue(k.Name) }
func (k PublishKey) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// MarshalJSON encodes the name and channels, never the secret.
func (k PublishKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name     string   `json:"name"`
		Channels []string `json:"channels"`
	}{k.Name, k.Channels})
}

// ParsePublishKeys reads RELAY_PUBLISH_KEYS: entries separated by ';' (or
// newlines), each "name=secret:pattern,pattern", for example
//
//	django=<64 hex digits>:project_*,user_*_notifications; cron=<64 hex digits>:*
//
// The format is unambiguous because names and secrets hold only letters,
// digits, '-' and '_': the first '=' ends the name and the first ':' the
// secret (patterns may hold ':'). Names must be distinct, and so must
// secrets. Errors name the entry and never quote a secret.
func ParsePublishKeys(spec string) ([]PublishKey, error) {
	var keys []PublishKey
	seen := make(map[string]bool)
	for i, entry := range strings.FieldsFunc(spec, func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k, err := parsePublishKey(entry)
		if err != nil {
			if k.Name != "" {
				return nil, fmt.Errorf("auth: publish key %d (%s): %w", i+1, k.Name, err)
			}
			return nil, fmt.Errorf("auth: publish key %d: %w", i+1, err)
		}
		if seen["n"+k.Name] {
			return nil, fmt.Errorf("auth: publish key %d: the name %q is used twice: give each key its own name "+
				"(when rotating: the new key as django2, the old as django)", i+1, k.Name)
		}
		if seen["s"+k.Secret] {
			return nil, fmt.Errorf("auth: publish key %d (%s): its secret is the same as an earlier key's", i+1, k.Name)
		}
		seen["n"+k.Name], seen["s"+k.Secret] = true, true
		keys = append(keys, k)
	}
	return keys, nil
}

// parsePublishKey parses one entry. On error, the key it returns holds the
// entry's name when that much was valid.
func parsePublishKey(entry string) (PublishKey, error) {
	const form = `write it as name=secret:pattern[,pattern…], e.g. django=<openssl rand -hex 32>:project_*,user_*_notifications`
	name, rest, ok := strings.Cut(entry, "=")
	name = strings.TrimSpace(name)
	if !ok || !keyAlphabet(name) {
		return PublishKey{}, fmt.Errorf("want a name of letters, digits, '-' or '_' before '=': %s", form)
	}
	named := PublishKey{Name: name}
	secret, patterns, ok := strings.Cut(rest, ":")
	secret = strings.TrimSpace(secret)
	if !ok {
		return named, fmt.Errorf("no ':' and channel patterns after the secret: %s", form)
	}
	if !keyAlphabet(secret) {
		return named, fmt.Errorf("the secret may hold only letters, digits, '-' and '_' (hex or base64url): %s", form)
	}
	if len(secret) < MinPublishKeyLen {
		return named, fmt.Errorf("the secret is %d characters, want at least %d: make one with openssl rand -hex 32",
			len(secret), MinPublishKeyLen)
	}
	k := PublishKey{Name: name, Secret: secret}
	for p := range strings.SplitSeq(patterns, ",") {
		p = strings.TrimSpace(p)
		if err := events.ValidatePattern(p); err != nil {
			return named, fmt.Errorf("%q is not a channel pattern: use 1 to %d of A-Z a-z 0-9 _ . : - and '*'",
				clip(p), events.MaxChannelLen)
		}
		k.Channels = append(k.Channels, p)
	}
	return k, nil
}

// keyAlphabet reports whether s is non-empty and holds only letters,
// digits, '-' and '_'.
func keyAlphabet(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// publishKeys matches presented credentials against the configured keys in
// constant time: each secret is kept as its SHA-256 digest, the candidate is
// hashed once, and every digest is compared (crypto/subtle) whatever matched,
// so the time taken says nothing about which key, or which prefix of one,
// was close. Hashing first also hides the secrets' lengths.
type publishKeys struct {
	digests    [][sha256.Size]byte
	identities []*Identity // identities[i] is what key i grants
}

func newPublishKeys(keys []PublishKey) (*publishKeys, error) {
	p := &publishKeys{}
	for i, k := range keys {
		if !keyAlphabet(k.Name) {
			return nil, fmt.Errorf("auth: publish key %d: the name must hold only letters, digits, '-' and '_'", i+1)
		}
		if !keyAlphabet(k.Secret) || len(k.Secret) < MinPublishKeyLen {
			return nil, fmt.Errorf("auth: publish key %d (%s): the secret must be at least %d of letters, digits, '-' and '_'",
				i+1, k.Name, MinPublishKeyLen)
		}
		if len(k.Channels) == 0 {
			return nil, fmt.Errorf("auth: publish key %d (%s) covers no channel", i+1, k.Name)
		}
		for _, c := range k.Channels {
			if err := events.ValidatePattern(c); err != nil {
				return nil, fmt.Errorf("auth: publish key %d (%s): %w", i+1, k.Name, err)
			}
		}
		p.digests = append(p.digests, sha256.Sum256([]byte(k.Secret)))
		p.identities = append(p.identities, &Identity{PublishKey: k.Name, Publish: append([]string(nil), k.Channels...)})
	}
	return p, nil
}

// match returns the Identity of the key whose secret is s, or nil.
func (p *publishKeys) match(s string) *Identity {
	d := sha256.Sum256([]byte(s))
	found := -1
	for i := range p.digests {
		eq := subtle.ConstantTimeCompare(d[:], p.digests[i][:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil
	}
	return p.identities[found]
}

// looksLikeKey reports whether a credential has a publish key's shape: a
// JWT always holds two dots, a publish key none.
func looksLikeKey(s string) bool { return !strings.Contains(s, ".") }
