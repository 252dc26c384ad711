package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relaydev/relay/events"
)

// FuzzIdentity signs fuzzed JWT payloads with the right key, as a backend
// would, and verifies them: whatever the claims, Verify never panics and
// refuses with ErrUnauthenticated or ErrTokenExpired and a UTF-8 message; an
// Identity it returns has a usable user id, project ids normalised (a JSON
// number as its decimal digits, a string as sent), valid channel patterns
// and a UTF-8 name (it is shown to other users in presence messages), and
// survives Mint and Verify unchanged.
func FuzzIdentity(f *testing.F) {
	exp := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	for _, s := range []string{
		`{"sub":"1","exp":` + exp + `}`,
		`{"user_id":42,"token_type":"access","jti":"x","exp":` + exp + `}`,
		`{"user_id":"u-1","sub":"","name":"Zoë 🎉","projects":[1,"2",18446744073709551615],"exp":` + exp + `}`,
		`{"sub":"1","projects":[18446744073709551616],"exp":` + exp + `}`,
		`{"sub":"1","projects":[-1,1.5,1e3,"a_b"],"exp":` + exp + `}`,
		`{"sub":"1","projects":"1","exp":` + exp + `}`,
		`{"sub":"1","subscribe":"project_7_*","publish":["*","user_1_notifications"],"exp":` + exp + `}`,
		`{"sub":"1","subscribe":["a b"],"exp":` + exp + `}`,
		`{"sub":"` + "\xe9\xe9" + `","name":"\ud800` + "\xff" + `","exp":` + exp + `}`,
		`{"sub":"ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé","exp":` + exp + `}`,
		`{"sub":"1","projects":["x` + strings.Repeat("é", 40) + `"],"exp":` + exp + `}`,
		`{"user_id":null,"exp":` + exp + `}`,
		`{"user_id":true,"exp":` + exp + `}`,
		`{"sub":"1","token_type":"refresh","exp":` + exp + `}`,
		`{"sub":"1","token_type":"` + "ü\xff" + `","exp":` + exp + `}`,
		`{"sub":"1","exp":1}`,
		`{"sub":"1","exp":"soon"}`,
		`{"sub":"1","exp":` + exp + `,"nbf":99999999999}`,
		`{"sub":"1"}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	v, _ := newTestVerifier(f)
	v.cache = nil
	real, err := NewVerifier(testSecret)
	if err != nil {
		f.Fatal(err)
	}
	real.cache = nil
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, err := v.Verify(signPayload(payload))
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrTokenExpired) {
				t.Fatalf("Verify: %v wraps neither ErrUnauthenticated nor ErrTokenExpired", err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("Verify: message %q is not UTF-8", err)
			}
			return
		}
		checkClaimsIdentity(t, payload, id)
		tok, err := Mint(testSecret, *id, time.Hour)
		if err != nil {
			t.Fatalf("Mint(%+v): %v", id, err)
		}
		again, err := real.Verify(tok)
		if err != nil {
			t.Fatalf("Verify(Mint(%+v)): %v", id, err)
		}
		again.Expires = id.Expires
		if !identical(id, again) {
			t.Fatalf("Mint and Verify turned %+v into %+v", id, again)
		}
	})
}

// signPayload makes an HS256 token of payload signed with testSecret.
func signPayload(payload []byte) string {
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// checkClaimsIdentity checks an accepted identity against the claims it came
// from.
func checkClaimsIdentity(t *testing.T, payload []byte, id *Identity) {
	t.Helper()
	if err := events.ValidateID("user", id.UserID); err != nil {
		t.Fatalf("user id %q: %v", id.UserID, err)
	}
	var sub string
	_ = json.Unmarshal(claim(t, payload, "sub"), &sub)
	if sub != "" && id.UserID != sub {
		t.Fatalf("user id %q, want sub %q", id.UserID, sub)
	}
	if !utf8.ValidString(id.Name) {
		t.Fatalf("name %q is not UTF-8", id.Name)
	}
	var want []string
	var list []any
	dec := json.NewDecoder(bytes.NewReader(claim(t, payload, "projects")))
	dec.UseNumber()
	_ = dec.Decode(&list)
	for _, p := range list {
		switch p := p.(type) {
		case json.Number:
			n, err := strconv.ParseUint(string(p), 10, 64)
			if err != nil || strconv.FormatUint(n, 10) != string(p) {
				t.Fatalf("accepted project id %s, not a canonical non-negative integer", p)
			}
			want = append(want, string(p))
		case string:
			want = append(want, p)
		default:
			t.Fatalf("accepted project id %v of type %T", p, p)
		}
	}
	if !slices.Equal(id.Projects, want) {
		t.Fatalf("projects: got %q, want %q", id.Projects, want)
	}
	for _, p := range id.Projects {
		if err := events.ValidateID("project", p); err != nil {
			t.Fatalf("project %q: %v", p, err)
		}
	}
	for _, p := range append(slices.Clone(id.Subscribe), id.Publish...) {
		if err := events.ValidatePattern(p); err != nil {
			t.Fatalf("pattern %q: %v", p, err)
		}
	}
	if !id.Expires.After(t0) {
		t.Fatalf("accepted a token that expired at %v", id.Expires)
	}
}

// claim is the member of the claims object that relay reads for name: the
// last whose name is exactly name (claim names are case-sensitive: "SUB" is
// not "sub"). nil when there is none.
func claim(t *testing.T, payload []byte, name string) json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("accepted claims %q that are not an object", payload)
	}
	var found json.RawMessage
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("accepted claims %q: %v", payload, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("accepted claims %q: %v", payload, err)
		}
		if key.(string) == name {
			found = v
		}
	}
	return found
}

// identical compares identities, nil and empty lists alike.
func identical(a, b *Identity) bool {
	return a.UserID == b.UserID && a.Name == b.Name && a.Expires.Equal(b.Expires) &&
		slices.Equal(a.Projects, b.Projects) && slices.Equal(a.Subscribe, b.Subscribe) && slices.Equal(a.Publish, b.Publish)
}
