package transport

import (
	"bytes"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestSockWatcherLastLeaveWhileHandling: the last stream leaves (holding
// the set's lock, as a stream's stop does) while the set's goroutine has
// taken an event and waits for that lock to hand it over. The leave must
// not wait for the goroutine: when it closed the set itself, os.File.Close
// waited for the goroutine's read, which waited for the lock, and every
// later stream of the server hung on the lock with them.
func TestSockWatcherLastLeaveWhileHandling(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	g := newSockWatcher()
	g.mu.Lock()
	if !g.join() {
		g.mu.Unlock()
		t.Fatal("join refused")
	}
	id, ok := g.add(&goneWatch{fd: fds[0], cancel: func() {}})
	g.mu.Unlock()
	if !ok {
		t.Fatal("add refused")
	}

	left := make(chan string)
	go func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		syscall.Close(fds[1]) // the client goes: an event for the set
		if !within(5*time.Second, func() bool { return anyStack("(*sockWatcher).handle", "sync.(*Mutex).Lock") }) {
			left <- "the set's goroutine never waited for the lock with the event"
			return
		}
		g.remove(id)
		g.leave()
		left <- ""
	}()
	select {
	case msg := <-left:
		if msg != "" {
			t.Fatal(msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the last leave did not return while the set's goroutine waited for the lock")
	}
	if !within(5*time.Second, func() bool { return !anyStack("(*sockWatcher).run") }) {
		t.Fatal("the set's goroutine did not end after the last leave")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.join() { // a new set for the next stream
		t.Fatal("join after the last leave refused")
	}
	g.leave()
}

// anyStack reports whether some goroutine's stack holds every one of frames.
func anyStack(frames ...string) bool {
	for _, g := range goroutineStacks() {
		if !slices.ContainsFunc(frames, func(f string) bool { return !bytes.Contains(g, []byte(f)) }) {
			return true
		}
	}
	return false
}

// within polls cond every millisecond for up to d.
func within(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
