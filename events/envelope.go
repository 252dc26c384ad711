package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DefaultMaxPayload is the default limit on one published event, in bytes.
const DefaultMaxPayload = 64 << 10

// reserved are the envelope members relay sets; a publisher's own values for
// them are replaced.
var reserved = map[string]bool{"id": true, "channel": true, "ts": true, "idempotency_key": true}

// ValidateIdempotencyKey checks a key: 1–MaxIdempotencyKey bytes of
// printable ASCII (a UUID, a hash, "ticket-5-update-17").
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKey {
		return fmt.Errorf("idempotency key must be 1-%d bytes: %w", MaxIdempotencyKey, ErrInvalid)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return fmt.Errorf("idempotency key must be printable ASCII without spaces: %w", ErrInvalid)
		}
	}
	return nil
}

// MaxIdempotencyKey is the longest idempotency key, in bytes.
const MaxIdempotencyKey = 200

// Draft is an event accepted for publishing but not yet in a log.
type Draft struct {
	Channel string
	Type    string
	// IdempotencyKey, when set, makes the append at most once per channel
	// within IdempotencyWindow: a draft whose key the channel has seen is not
	// stored again (see Log.Append). It is not part of the envelope.
	IdempotencyKey string
	// Fields are the published object's members other than id, channel and ts,
	// encoded as JSON object members without the braces: `"type":"x","data":{…}`.
	Fields []byte
}

// ParseDraft validates one published JSON object, {"channel": C, "type": T,
// …any other members}, against a payload limit (0: DefaultMaxPayload). Errors
// wrap ErrInvalid or ErrTooLarge and say what to fix.
func ParseDraft(raw []byte, maxPayload int) (Draft, error) {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if len(raw) > maxPayload {
		return Draft{}, fmt.Errorf("event is %d bytes, over the %d-byte limit: %w", len(raw), maxPayload, ErrTooLarge)
	}
	if d, ok := parseDraftFast(raw); ok {
		return d, nil
	}
	return parseDraftMap(raw)
}

// parseDraftMap is ParseDraft by decoding the object into a map and encoding
// it again: what every event went through before parseDraftFast, and still
// the path of anything parseDraftFast does not take, so that both give the
// same draft, or the same error, for every input (FuzzParseDraftFast).
func parseDraftMap(raw []byte) (Draft, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return Draft{}, fmt.Errorf("event must be a JSON object with \"channel\" and \"type\": %w", ErrInvalid)
	}
	if err := ValidateUnicode(raw); err != nil {
		return Draft{}, fmt.Errorf("event %w", err)
	}
	var d Draft
	if err := json.Unmarshal(members["channel"], &d.Channel); err != nil || d.Channel == "" {
		return Draft{}, fmt.Errorf("event needs a \"channel\" string: %w", ErrInvalid)
	}
	if err := ValidateChannel(d.Channel); err != nil {
		return Draft{}, err
	}
	if err := json.Unmarshal(members["type"], &d.Type); err != nil || d.Type == "" {
		return Draft{}, fmt.Errorf("event needs a non-empty \"type\" string: %w", ErrInvalid)
	}
	if raw, ok := members["idempotency_key"]; ok {
		if err := json.Unmarshal(raw, &d.IdempotencyKey); err != nil {
			return Draft{}, fmt.Errorf("event's \"idempotency_key\" must be a string: %w", ErrInvalid)
		}
		if err := ValidateIdempotencyKey(d.IdempotencyKey); err != nil {
			return Draft{}, err
		}
	}
	for k := range reserved {
		delete(members, k)
	}
	fields, err := json.Marshal(members) // keys sorted: the same event always encodes the same
	if err != nil {
		return Draft{}, fmt.Errorf("event: %v: %w", err, ErrInvalid)
	}
	d.Fields = fields[1 : len(fields)-1]
	return d, nil
}

// ValidateUnicode checks that raw, a syntactically valid JSON text, holds
// only Unicode text: UTF-8 bytes, and no \u escape of a UTF-16 surrogate that
// is not half of a pair (I-JSON, RFC 7493 §2.1). encoding/json accepts both
// and decodes them to U+FFFD, but a json.RawMessage keeps them as sent, and
// relay forwards members as sent: invalid UTF-8 in a WebSocket text frame
// makes every browser fail the connection (1007), and a lone surrogate decodes
// differently in every client (Python cannot even encode it again). The
// error wraps ErrInvalid and says at which byte.
func ValidateUnicode(raw []byte) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("is not valid UTF-8 at byte %d: send JSON encoded as UTF-8: %w", invalidAt(raw), ErrInvalid)
	}
	inString := false
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			inString = !inString
		case '\\':
			if !inString || i+1 >= len(raw) {
				continue
			}
			i++ // the escaped byte: a quote here does not end the string
			if raw[i] != 'u' {
				continue
			}
			r, ok := hex4(raw[i+1:])
			switch {
			case !ok || !utf16.IsSurrogate(r):
			case r < 0xdc00 && bytes.HasPrefix(raw[i+5:], []byte(`\u`)):
				if low, ok := hex4(raw[i+7:]); ok && low >= 0xdc00 && low <= 0xdfff {
					i += 6 // a whole pair: skip the low half too
					break
				}
				fallthrough
			default:
				return fmt.Errorf(`has a lone UTF-16 surrogate \u%04x at byte %d, which is no character: escape only whole surrogate pairs, or send the text as UTF-8: %w`,
					r, i-1, ErrInvalid)
			}
			i += 4
		}
	}
	return nil
}

// invalidAt is the offset of the first byte of b that does not start a UTF-8
// encoding.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// hex4 decodes the 4 hex digits a \u escape starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// NewDraft builds a draft from Go values, for in-process publishers: data is
// any JSON-encodable value, sent as the envelope's "data" member.
func NewDraft(channel, typ string, data any) (Draft, error) {
	obj := map[string]any{"channel": channel, "type": typ}
	if data != nil {
		obj["data"] = data
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return Draft{}, fmt.Errorf("event data: %v: %w", err, ErrInvalid)
	}
	return ParseDraft(raw, 0)
}

// Event is one event in a channel's log. Events are immutable once stored and
// shared by every subscriber: their encodings are computed once, on first use.
type Event struct {
	Channel string
	Pos     Position
	Time    time.Time
	Type    string
	Fields  []byte
	// Ephemeral events (typing, viewing) are broadcast, never stored: they
	// have no position, no "id" and no SSE id line, and are never replayed.
	Ephemeral bool
	// Repeat is set on what Append returns for a draft whose idempotency key
	// the channel had already seen: nothing was stored, Pos and Time are the
	// first append's, and Fields are the draft's (not necessarily the first's).
	Repeat bool

	once  sync.Once
	frame []byte // "id: <id>\ndata: <envelope>\n\n"
	data  int    // offset of "data: " in frame
	id    int    // end of the id text in frame

	extOnce sync.Once
	ext     any
}

// NewEvent makes a stored event from a draft, its position and time.
func NewEvent(d Draft, pos Position, t time.Time) *Event {
	return &Event{Channel: d.Channel, Pos: pos, Time: t, Type: d.Type, Fields: d.Fields}
}

// NewEphemeral makes an ephemeral event from a draft.
func NewEphemeral(d Draft, t time.Time) *Event {
	return &Event{Channel: d.Channel, Time: t, Type: d.Type, Fields: d.Fields, Ephemeral: true}
}

func (e *Event) encode() {
	e.once.Do(func() {
		b := make([]byte, 0, 64+len(e.Channel)+len(e.Fields)+48)
		if e.Ephemeral {
			b = append(b, `data: {"channel":"`...)
		} else {
			b = append(b, "id: "...)
			b = e.Pos.AppendText(b)
			e.id = len(b)
			b = append(b, "\ndata: "...)
			e.data = e.id + 1
			b = append(b, `{"id":"`...)
			b = e.Pos.AppendText(b)
			b = append(b, `","channel":"`...)
		}
		b = append(b, e.Channel...) // channel bytes need no JSON escaping
		b = append(b, `","ts":"`...)
		b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
		if len(e.Fields) > 0 {
			b = append(b, ',')
			b = append(b, e.Fields...)
		}
		b = append(b, "}\n\n"...)
		e.frame = b
	})
}

// ID is the event's envelope id, its Position's text form ("" when ephemeral).
func (e *Event) ID() string {
	if e.Ephemeral {
		return ""
	}
	e.encode()
	return string(e.frame[len("id: "):e.id])
}

// JSON is the envelope every client receives: the published object plus "id",
// "channel" and "ts". The slice is shared: do not modify it.
func (e *Event) JSON() []byte {
	e.encode()
	return e.frame[e.data+len("data: ") : len(e.frame)-2]
}

// SSE is the event's whole Server-Sent Events frame with its own id on the
// "id:" line (none when ephemeral), for single-channel streams. The slice is
// shared.
func (e *Event) SSE() []byte { e.encode(); return e.frame }

// SSEData is the frame without its "id:" line ("data: …\n\n"), for streams
// that write their own (multi-channel) cursor first. The slice is shared.
func (e *Event) SSEData() []byte { e.encode(); return e.frame[e.data:] }

// Ext returns a transport-specific encoding of the event, built by build on
// the first call and shared by every later caller (one prepared WebSocket
// message per event, whatever the number of subscribers). Only one kind of
// encoding may be stored per event.
func (e *Event) Ext(build func(*Event) any) any {
	e.extOnce.Do(func() { e.ext = build(e) })
	return e.ext
}

// LogValue logs the event's id, channel, type and size, never its payload.
func (e *Event) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", e.Pos.String()),
		slog.String("channel", e.Channel),
		slog.String("type", e.Type),
		slog.Int("size", len(e.Fields)),
	)
}

// Control builds the JSON of a relay control message, such as
// {"type":"reset","channel":…}: a type plus string members in the order given.
func Control(typ string, kv ...string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":`)
	b.WriteString(strconv.Quote(typ))
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteByte(',')
		b.WriteString(strconv.Quote(kv[i]))
		b.WriteByte(':')
		v, _ := json.Marshal(kv[i+1])
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}
