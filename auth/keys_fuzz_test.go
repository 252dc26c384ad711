package auth

import (
	"strings"
	"testing"
)

// FuzzParsePublishKeys: any RELAY_PUBLISH_KEYS value gives keys or an
// error, never a panic, and an error never quotes a secret the value holds.
func FuzzParsePublishKeys(f *testing.F) {
	secret := strings.Repeat("a1", 20)
	for _, seed := range []string{
		"django=" + secret + ":project_*,user_*_notifications; cron=" + strings.Repeat("b2", 20) + ":*",
		"a=" + secret + ":ns:x.*", "=:", ";;\n", "a=b:c", "a=" + secret + ":", "a=" + secret + "!:*",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		keys, err := ParsePublishKeys(spec)
		if err != nil {
			for _, entry := range strings.FieldsFunc(spec, func(r rune) bool { return r == ';' || r == '\n' }) {
				_, rest, _ := strings.Cut(entry, "=")
				s, _, _ := strings.Cut(rest, ":")
				if s = strings.TrimSpace(s); len(s) >= MinPublishKeyLen && keyAlphabet(s) && strings.Contains(err.Error(), s) {
					t.Fatalf("error %q quotes a secret", err)
				}
			}
			return
		}
		for _, k := range keys {
			if len(k.Secret) < MinPublishKeyLen || !keyAlphabet(k.Secret) || !keyAlphabet(k.Name) || len(k.Channels) == 0 {
				t.Fatalf("accepted %q with channels %q", k.Name, k.Channels)
			}
		}
		if len(keys) > 0 {
			if _, err := NewVerifierWith(Keys{Secrets: [][]byte{testSecret}, Publish: keys}); err != nil {
				t.Fatalf("parsed keys refused by NewVerifierWith: %v", err)
			}
		}
	})
}

// FuzzParseJWKS and FuzzParsePublicKeys: any key material gives keys that
// a Verifier takes, or an error, never a panic.
func FuzzParseJWKS(f *testing.F) {
	for _, seed := range []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, `{"keys":[]}`, `{"keys":[{"kty":"oct"}]}`, `[]`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err == nil {
			if _, err := NewVerifierWith(Keys{Public: keys}); err != nil {
				t.Fatalf("parsed keys refused by NewVerifierWith: %v", err)
			}
		}
	})
}

func FuzzParsePublicKeys(f *testing.F) {
	for _, seed := range []string{
		"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
		"-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n", "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParsePublicKeys(data)
		if err == nil {
			if _, err := NewVerifierWith(Keys{Public: keys}); err != nil {
				t.Fatalf("parsed keys refused by NewVerifierWith: %v", err)
			}
		}
	})
}
