package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/golang-jwt/jwt/v5"

	"github.com/relaydev/relay/events"
)

// claims is the JWT payload relay reads. Claims whose shape varies between
// backends stay raw while jwt decodes the token and are decoded by identity
// only after the signature and exp have been checked, so a forged token is
// reported as forged rather than as carrying odd claims.
type claims struct {
	jwt.RegisteredClaims
	// UserID is djangorestframework-simplejwt's user claim: a number or a
	// string. sub wins when both are present.
	UserID json.RawMessage `json:"user_id,omitempty"`
	Name   string          `json:"name,omitempty"`
	// Projects is an array of project ids, each a number or a string.
	Projects json.RawMessage `json:"projects,omitempty"`
	// Subscribe and Publish are channel patterns: an array or one string.
	Subscribe json.RawMessage `json:"subscribe,omitempty"`
	Publish   json.RawMessage `json:"publish,omitempty"`
	// TokenType is simplejwt's "access" or "refresh"; absent elsewhere.
	TokenType string `json:"token_type,omitempty"`
}

// UnmarshalJSON reads claims by their exact names. encoding/json alone
// matches member names regardless of case, so {"sub":"1","SUB":"2"} would
// be user 2; claim names are case-sensitive (RFC 7519, section 4), and a
// member that is not exactly one of the names below is ignored like any
// other claim relay does not know. The members are split once and each
// known one decoded into its field: no second pass over the payload.
func (c *claims) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for name, v := range all {
		var field any
		switch name {
		case "iss":
			field = &c.Issuer
		case "sub":
			field = &c.Subject
		case "aud":
			field = &c.Audience
		case "exp":
			field = &c.ExpiresAt
		case "nbf":
			field = &c.NotBefore
		case "iat":
			field = &c.IssuedAt
		case "jti":
			field = &c.ID
		case "user_id":
			field = &c.UserID
		case "name":
			field = &c.Name
		case "projects":
			field = &c.Projects
		case "subscribe":
			field = &c.Subscribe
		case "publish":
			field = &c.Publish
		case "token_type":
			field = &c.TokenType
		default:
			continue
		}
		if err := json.Unmarshal(v, field); err != nil {
			return fmt.Errorf("claim %s: %w", name, err)
		}
	}
	return nil
}

// identity checks the decoded claims and turns them into an Identity. Its
// errors are *claimError or unauthenticated.
func (c *claims) identity() (*Identity, error) {
	switch c.TokenType {
	case "", "access":
	case "refresh":
		return nil, unauthenticated("token_type is \"refresh\": send the access token, not the refresh token")
	default:
		return nil, unauthenticated("token_type %q is not \"access\": send an access token", clip(c.TokenType))
	}
	user, err := c.subject()
	if err != nil {
		return nil, err
	}
	id := &Identity{UserID: user, Name: c.Name, Expires: c.ExpiresAt.Time}
	if id.Projects, err = parseProjects(c.Projects); err != nil {
		return nil, err
	}
	if id.Subscribe, err = parsePatterns("subscribe", c.Subscribe); err != nil {
		return nil, err
	}
	if id.Publish, err = parsePatterns("publish", c.Publish); err != nil {
		return nil, err
	}
	return id, nil
}

// subject returns sub, else user_id, as a user id usable in channel names.
func (c *claims) subject() (string, error) {
	name, user := "sub", c.Subject
	if user == "" {
		if isNull(c.UserID) {
			return "", unauthenticated("token has neither sub nor user_id: mint it with the user's id in sub")
		}
		var err error
		name = "user_id"
		if user, err = idValue(c.UserID); err != nil {
			return "", &claimError{name, err.Error()}
		}
	}
	if err := events.ValidateID("user", user); err != nil {
		return "", &claimError{name, fmt.Sprintf("is %q; user ids may hold only letters, digits and '-'", clip(user))}
	}
	return user, nil
}

// parseProjects decodes an array of project ids, numbers or strings or a
// mix, into decimal strings. Absent or null means none.
func parseProjects(raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, &claimError{"projects", "must be an array of project ids, like [1, 2] or [\"1\", \"2\"]"}
	}
	ids := make([]string, 0, len(elems))
	for i, e := range elems {
		id, err := idValue(e)
		if err != nil {
			return nil, &claimError{"projects", fmt.Sprintf("element %d %v", i, err)}
		}
		if events.ValidateID("project", id) != nil {
			return nil, &claimError{"projects", fmt.Sprintf("element %d is %q; project ids may hold only letters, digits and '-'", i, clip(id))}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// idValue decodes one id: a non-negative integer, kept as its decimal
// digits, or a string.
func idValue(raw json.RawMessage) (string, error) {
	switch {
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("is not a valid JSON string")
		}
		return s, nil
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		if _, err := strconv.ParseUint(string(raw), 10, 64); err != nil {
			return "", fmt.Errorf("is %s, want a non-negative integer", clip(string(raw)))
		}
		return string(raw), nil
	default:
		return "", fmt.Errorf("is a JSON %s, want a number or a string", jsonKind(raw[0]))
	}
}

// parsePatterns decodes the subscribe or publish claim: an array of channel
// patterns or a single pattern string. Absent or null means none.
func parsePatterns(claim string, raw json.RawMessage) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var list []string
	if raw[0] == '"' {
		list = make([]string, 1)
		if err := json.Unmarshal(raw, &list[0]); err != nil {
			return nil, &claimError{claim, "is not a valid JSON string"}
		}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, &claimError{claim, "must be a channel pattern or an array of them, like [\"project_7_*\"]"}
	}
	for i, p := range list {
		if events.ValidatePattern(p) != nil {
			return nil, &claimError{claim, fmt.Sprintf("element %d is %q, not a channel pattern: use 1 to %d of A-Z a-z 0-9 _ . : - and '*'",
				i, clip(p), events.MaxChannelLen)}
		}
	}
	return slices.Clip(list), nil
}

// marshalProjects encodes project ids for Mint: numbers when every id is a
// canonical decimal number, as simplejwt backends usually send them, else
// strings. It returns nil for no projects.
func marshalProjects(ids []string) (json.RawMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	allNumbers := true
	for _, id := range ids {
		n, err := strconv.ParseUint(id, 10, 64)
		allNumbers = allNumbers && err == nil && strconv.FormatUint(n, 10) == id
	}
	if !allNumbers {
		return json.Marshal(ids)
	}
	nums := make([]json.Number, len(ids))
	for i, id := range ids {
		nums[i] = json.Number(id)
	}
	return json.Marshal(nums)
}

// marshalPatterns encodes channel patterns for Mint, nil for none.
func marshalPatterns(patterns []string) (json.RawMessage, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	return json.Marshal(patterns)
}

// isNull reports whether a raw claim is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// jsonKind names the JSON type that starts with byte c.
func jsonKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "value"
}

// clip shortens a claim value quoted in an error message.
func clip(s string) string { return clipTo(s, 64) }

// clipTo shortens s to at most n bytes plus an ellipsis.
func clipTo(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
