package auth

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestClaimNamesAreCaseSensitive: a member that differs from a claim's name
// only in case is not that claim.
func TestClaimNamesAreCaseSensitive(t *testing.T) {
	v, _ := newTestVerifier(t)
	v.cache = nil
	exp := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	for _, tc := range []struct {
		name, payload, user string
		projects            []string
	}{
		{"SUB after sub", `{"sub":"1","SUB":"2","exp":` + exp + `}`, "1", nil},
		{"Sub before sub", `{"Sub":"2","sub":"1","exp":` + exp + `}`, "1", nil},
		{"Projects", `{"sub":"1","projects":[1],"Projects":[2],"exp":` + exp + `}`, "1", []string{"1"}},
		{"User_ID", `{"user_id":1,"User_ID":2,"exp":` + exp + `}`, "1", nil},
	} {
		id, err := v.Verify(signPayload([]byte(tc.payload)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if id.UserID != tc.user || !slices.Equal(id.Projects, tc.projects) {
			t.Errorf("%s: got user %q projects %q, want %q %q", tc.name, id.UserID, id.Projects, tc.user, tc.projects)
		}
	}
	if _, err := v.Verify(signPayload([]byte(`{"SUB":"2","exp":` + exp + `}`))); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("only SUB: got %v, want ErrUnauthenticated (no sub)", err)
	}
	if _, err := v.Verify(signPayload([]byte(`{"sub":"1","EXP":` + exp + `}`))); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("only EXP: got %v, want ErrUnauthenticated (exp is required)", err)
	}
}

// TestClaimsReadEveryField keeps UnmarshalJSON in step with claims' fields:
// claims with every field set, encoded by their json tags, read back equal.
// A field added to claims but not to UnmarshalJSON stays zero and fails it.
func TestClaimsReadEveryField(t *testing.T) {
	at := jwt.NewNumericDate(t0)
	want := claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "i", Subject: "s", Audience: jwt.ClaimStrings{"a"},
			ExpiresAt: at, NotBefore: at, IssuedAt: at, ID: "j"},
		UserID: json.RawMessage(`7`), Name: "n", Projects: json.RawMessage(`[1]`),
		Subscribe: json.RawMessage(`"x"`), Publish: json.RawMessage(`"y"`), TokenType: "access",
	}
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			if v.Type().Field(i).Anonymous {
				walk(f)
			} else if f.IsZero() {
				t.Fatalf("field %s is not set in this test: set it", v.Type().Field(i).Name)
			}
		}
	}
	walk(reflect.ValueOf(want))
	type plain claims
	b, err := json.Marshal((*plain)(&want))
	if err != nil {
		t.Fatal(err)
	}
	var got claims
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal((*plain)(&got))
	if string(again) != string(b) {
		t.Errorf("read back %s, want %s", again, b)
	}
}
