package events

import (
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// member is one top-level member of a published object, as parseDraftFast
// found it: key is the name's bytes without quotes (no escape in it), value
// the member's value compacted and escaped as encoding/json would encode it.
type member struct {
	key, value []byte
}

// parseDraftFast is ParseDraft for the common event, without decoding into a
// map and encoding again (a tenth of a publish's CPU time on the memory
// store): one pass over the object's top-level members, each value copied
// compacted with <, >, &, U+2028 and U+2029 escaped, the members sorted by
// name, exactly the bytes json.Marshal of the map gives. It declines (ok
// false) whatever it does not handle in that one way, and anything ParseDraft
// would refuse, so that parseDraftMap then gives the same draft or error: a
// name with an escape or a character json.Marshal would escape, a name given
// twice, a "channel", "type" or "idempotency_key" that is not a plain string,
// text that is not Unicode, or an invalid draft.
func parseDraftFast(raw []byte) (Draft, bool) {
	if !json.Valid(raw) || ValidateUnicode(raw) != nil {
		return Draft{}, false
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return Draft{}, false
	}
	var buf [8]member
	ms := buf[:0]
	out := make([]byte, 0, len(raw)) // every value, compacted: never longer than raw but for escapes
	var d Draft
	var haveChannel, haveType bool
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] != '}' {
		// raw is valid JSON: a member is "name" : value, then , or }.
		start := i + 1
		end := start
		for end < len(raw) && raw[end] != '"' {
			switch raw[end] {
			case '\\', '<', '>', '&', 0xE2:
				return Draft{}, false
			}
			end++
		}
		key := raw[start:end]
		i = skipSpace(raw, end+1) // at ':'
		i = skipSpace(raw, i+1)
		from := len(out)
		out, i = appendValue(out, raw, i)
		value := out[from:len(out):len(out)]
		switch string(key) {
		case "channel":
			if haveChannel || !plainString(value, &d.Channel) {
				return Draft{}, false
			}
			haveChannel = true
		case "type":
			if haveType || !plainString(value, &d.Type) {
				return Draft{}, false
			}
			haveType = true
		case "idempotency_key":
			if d.IdempotencyKey != "" || !plainString(value, &d.IdempotencyKey) || ValidateIdempotencyKey(d.IdempotencyKey) != nil {
				return Draft{}, false
			}
		}
		ms = append(ms, member{key, value})
		i = skipSpace(raw, i)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	if !haveChannel || !haveType || d.Type == "" || ValidateChannel(d.Channel) != nil {
		return Draft{}, false
	}
	slices.SortFunc(ms, func(a, b member) int { return compareBytes(a.key, b.key) })
	size := 0
	for k, m := range ms {
		if k > 0 && string(m.key) == string(ms[k-1].key) {
			return Draft{}, false // a name given twice: the map keeps the last
		}
		size += len(m.key) + len(m.value) + 4
	}
	fields := make([]byte, 0, size)
	for _, m := range ms {
		if reserved[string(m.key)] {
			continue
		}
		if len(fields) > 0 {
			fields = append(fields, ',')
		}
		fields = append(fields, '"')
		fields = append(fields, m.key...)
		fields = append(fields, '"', ':')
		fields = append(fields, m.value...)
	}
	d.Fields = fields
	return d, true
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

// plainString sets *s to a JSON string value without escapes, reporting
// false for any other value.
func plainString(v []byte, s *string) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' {
			return false
		}
	}
	*s = string(v[1 : len(v)-1])
	return utf8.ValidString(*s)
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

const hexDigits = "0123456789abcdef"

// appendValue appends the JSON value at raw[i:] (raw is valid JSON) to dst
// as json.Marshal encodes a json.RawMessage: without the spaces between
// tokens, with <, >, & and U+2028, U+2029 in strings as \u escapes. It
// returns dst and the offset just after the value.
func appendValue(dst, raw []byte, i int) ([]byte, int) {
	depth, inString := 0, false
	for ; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case c == '\\':
				dst = append(dst, c, raw[i+1])
				i++
			case c == '"':
				dst = append(dst, c)
				inString = false
				if depth == 0 {
					return dst, i + 1
				}
			case c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8:
				dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xF])
				i += 2
			default:
				dst = append(dst, c)
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			if depth == 0 {
				return dst, i
			}
		case '"':
			inString = true
			dst = append(dst, c)
		case '{', '[':
			depth++
			dst = append(dst, c)
		case '}', ']':
			if depth == 0 {
				return dst, i // the end of the enclosing object
			}
			depth--
			dst = append(dst, c)
			if depth == 0 {
				return dst, i + 1
			}
		case ',':
			if depth == 0 {
				return dst, i
			}
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst, i
}
