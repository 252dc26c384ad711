package transport

import (
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
type registry struct {
	mu     sync.Mutex
	byUser map[string]map[*liveStream]struct{}
}

func newRegistry() *registry {
	return &registry{byUser: map[string]map[*liveStream]struct{}{}}
}

// add registers a stream of user reading channels.
func (r *registry) add(user string, channels []string) *liveStream {
	l := &liveStream{user: user, channels: channels, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.byUser[user]
	if set == nil {
		set = map[*liveStream]struct{}{}
		r.byUser[user] = set
	}
	set[l] = struct{}{}
	return l
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
	var hit []*liveStream
	for l := range r.byUser[user] {
		if len(channels) == 0 || slices.ContainsFunc(l.channels, func(c string) bool { return slices.Contains(channels, c) }) {
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
