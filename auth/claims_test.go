package auth

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestClaimNamesMatchTheStruct keeps claimNames, which UnmarshalJSON reads,
// equal to the json names of claims' fields.
func TestClaimNamesMatchTheStruct(t *testing.T) {
	var names []string
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for f := range typ.Fields() {
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			names = append(names, name)
		}
	}
	walk(reflect.TypeFor[claims]())
	slices.Sort(names)
	want := slices.Sorted(slices.Values(claimNames))
	if !slices.Equal(names, want) {
		t.Errorf("claims' json names %q, claimNames %q: keep them equal", names, want)
	}
}
