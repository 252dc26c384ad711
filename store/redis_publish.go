package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
)

// The Go side of redis_publish.lua: a pipeline's scripts, and the stored
// events made from their answers. The writer that batches calls into these
// pipelines is in redis_batch.go.

// pipeline sends one publish script per group as one pipeline (see
// redis_publish.lua for the arguments) and returns their commands, answered
// or failed.
func (w *redisWriter) pipeline(ctx context.Context, gs []group) []*redis.Cmd {
	r := w.r
	cmds := make([]*redis.Cmd, 0, len(gs))
	_, _ = r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, g := range gs {
			keys := r.keys(g.channel)
			args := make([]any, 0, 6+3*len(g.entries))
			args = append(args, events.NewEpoch(), w.maxEvents, w.maxAge, w.publish, g.channel, w.window)
			for _, e := range g.entries {
				d := e.c.drafts[e.i]
				keyed := "0"
				if d.IdempotencyKey != "" {
					keyed = "1"
					keys = append(keys, r.prefix+"{"+d.Channel+"}:i:"+d.IdempotencyKey)
				}
				args = append(args, d.Type, d.Fields, keyed)
			}
			cmds = append(cmds, scriptPublish.EvalSha(ctx, pipe, keys, args...))
		}
		return nil
	})
	return cmds
}

// appended makes the stored events of a group from its publish script's
// answer (see redis_publish.lua): the epoch, first seq and time of the
// events stored, then per event 0 (stored, the next seq) or a repeat's
// "<epoch> <seq> <ms>".
func appended(g group, cmd *redis.Cmd) ([]*events.Event, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != 3+len(g.entries) {
		return nil, fmt.Errorf("publish script returned %d values for %d events, want 3 and one each", len(res), len(g.entries))
	}
	epoch, _ := res[0].(string)
	first, _ := res[1].(int64)
	msText, _ := res[2].(string)
	ms, msErr := strconv.ParseInt(msText, 10, 64)
	pos, t := events.Position{Epoch: epoch, Seq: uint64(first)}, time.UnixMilli(ms)
	evs := make([]*events.Event, len(g.entries))
	for j, e := range g.entries {
		d := e.c.drafts[e.i]
		switch v := res[3+j].(type) {
		case int64: // stored
			if epoch == "" || first <= 0 || msErr != nil || v != 0 {
				return nil, fmt.Errorf("publish script returned %v for a stored event, after %v", v, res[:3])
			}
			evs[j] = events.NewEvent(d, pos, t)
			pos.Seq++
		case string: // a repeat: the first append's id and time
			ev, err := repeated(d, v)
			if err != nil {
				return nil, err
			}
			evs[j] = ev
		default:
			return nil, fmt.Errorf("publish script returned %v (%T) for an event", v, v)
		}
	}
	return evs, nil
}

// repeated is the event a repeat's idempotency key recorded: its first
// append's "<epoch> <seq> <ms>".
func repeated(d events.Draft, rec string) (*events.Event, error) {
	epoch, rest, ok1 := strings.Cut(rec, " ")
	seqText, msText, ok2 := strings.Cut(rest, " ")
	seq, err1 := strconv.ParseUint(seqText, 10, 64)
	ms, err2 := strconv.ParseInt(msText, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || epoch == "" || seq == 0 {
		return nil, fmt.Errorf("publish script returned a repeat of %q", rec)
	}
	ev := events.NewEvent(d, events.Position{Epoch: epoch, Seq: seq}, time.UnixMilli(ms))
	ev.Repeat = true
	return ev, nil
}

// firstNoScript is the index of the first command Redis refused with
// NOSCRIPT (its script cache was emptied: a restart or SCRIPT FLUSH), or -1.
func firstNoScript(cmds []*redis.Cmd) int {
	for i, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") { // HasErrorPrefix allocates, even for nil
			return i
		}
	}
	return -1
}

// allNoScript tells whether Redis refused every one of cmds with NOSCRIPT:
// none of them ran, so they can be sent again without breaking the order.
func allNoScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if !redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return false
		}
	}
	return true
}
