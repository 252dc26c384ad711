package transport

import (
	"fmt"
	"slices"
	"sync"
)

// liveStream is one open stream as the registry knows it: its user, its
// channels, and how to end it from outside its session.
type liveStream struct {
	user     string
	channels []string
	once     sync.Once
	done     chan struct{} // closed by end; the session selects on it
	err      error         // why, set before done closes
}

// end asks the stream's session to end with err, and reports whether this
// call did: only the first counts.
func (l *liveStream) end(err error) bool {
	first := false
	l.once.Do(func() {
		l.err = err
		close(l.done)
		first = true
	})
	return first
}

// registry is every open stream of this process, by user, so that the
// backend can end a user's streams (POST /api/disconnect).
//
// A stream is registered only once it is authorized and subscribed, which
// takes a while (the authorization hook, store calls): a disconnect that
// arrives meanwhile finds nothing to end. So the registry also remembers its
// recent disconnects, numbered: a stream notes the number when its request
// arrives (mark) and add refuses it when a disconnect since then covers it.
type registry struct {
	mu     sync.Mutex
	byUser map[string]map[*liveStream]struct{}

	gen    uint64             // disconnects so far
	recent []disconnectRecord // the last recentDisconnects of them, oldest first
}

// recentDisconnects is how many disconnects the registry remembers for the
// streams still opening. An open takes at most a few seconds (bounded by
// the authorization hook's and the store's timeouts); a stream that began
// before the oldest remembered disconnect is refused with errRestarting,
// and reconnects, re-authorized.
const recentDisconnects = 1024

// disconnectRecord is one disconnect, for the streams opening meanwhile.
type disconnectRecord struct {
	gen      uint64
	user     string
	channels []string // empty: all of the user's
	err      error
}

func (d *disconnectRecord) covers(user string, channels []string) bool {
	return d.user == user && (len(d.channels) == 0 || slices.ContainsFunc(channels, func(c string) bool { return slices.Contains(d.channels, c) }))
}

func newRegistry() *registry {
	return &registry{byUser: map[string]map[*liveStream]struct{}{}}
}

// mark returns the number of the latest disconnect: pass it to add.
func (r *registry) mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}

// add registers a stream of user reading channels, whose request arrived
// at mark since; it refuses one that a disconnect since then covers.
func (r *registry) add(user string, channels []string, since uint64) (*liveStream, error) {
	l := &liveStream{user: user, channels: channels, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen > since {
		if len(r.recent) == 0 || r.recent[0].gen > since+1 {
			return nil, fmt.Errorf("too many disconnects while this stream was opening to tell whether one covers it; reconnect: %w", errRestarting)
		}
		for i := range r.recent {
			if d := &r.recent[i]; d.gen > since && d.covers(user, channels) {
				return nil, d.err
			}
		}
	}
	set := r.byUser[user]
	if set == nil {
		set = map[*liveStream]struct{}{}
		r.byUser[user] = set
	}
	set[l] = struct{}{}
	return l, nil
}

// remove forgets a stream that has ended.
func (r *registry) remove(l *liveStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.byUser[l.user]
	delete(set, l)
	if len(set) == 0 {
		delete(r.byUser, l.user)
	}
}

// disconnect ends user's streams with err: all of them when channels is
// empty, else those reading any of channels. It returns how many it ended
// (streams already asked to end are not counted again).
func (r *registry) disconnect(user string, channels []string, err error) int {
	r.mu.Lock()
	r.gen++
	d := disconnectRecord{gen: r.gen, user: user, channels: channels, err: err}
	if len(r.recent) == recentDisconnects {
		r.recent = append(r.recent[:0], r.recent[1:]...)
	}
	r.recent = append(r.recent, d)
	var hit []*liveStream
	for l := range r.byUser[user] {
		if d.covers(user, l.channels) {
			hit = append(hit, l)
		}
	}
	r.mu.Unlock()
	n := 0
	for _, l := range hit {
		if l.end(err) {
			n++
		}
	}
	return n
}
