package transport

import (
	"context"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// On Linux, idle streams' sockets are watched from one epoll set per
// server instead of a goroutine per stream parked in a read: that
// goroutine and its 2 KiB stack were a fifth of an idle stream's memory.
// One goroutine takes the events of every watched socket and hands what it
// sees to the socket's watch, under the set's lock: an SSE stream's
// client going away (goneWatch, below), a WebSocket client's next frame
// (frameWatch, ws_read_linux.go).
//
// A socket's descriptor number is reused once it is closed, so the set
// identifies each watch by a number of its own (the event's data), not by
// the descriptor, and a stream ends its watch before it closes its
// connection: under the lock, a watch's descriptor is always its own.

// sockWatcher is a server's epoll set of streams' sockets. The set itself
// waits in Go's poller (an epoll set is readable while it has events), so
// its goroutine parks as a goroutine waiting on a socket does: its wakes
// join the runtime's own, and no thread sits in an epoll_wait of its own.
type sockWatcher struct {
	mu      sync.Mutex
	members int // streams that watch a socket now or may again (see join)
	watches map[uint64]watch
	next    uint64   // the next watch's number
	set     *os.File // the epoll set; nil: none (an earlier one's goroutine may be ending)
	epfd    int      // set's descriptor, while set is open
}

// A watch handles its socket's epoll events. The set calls ready under its
// lock, so ready must never wait: it reads with MSG_DONTWAIT, and hands
// anything longer to after, which the set calls once the lock is released.
// The set is edge-triggered: ready reads until nothing is left (or it
// ends), since what it leaves unread is not reported again.
type watch interface {
	socket() int // the descriptor watched, its own until the watch ends
	ready(events uint32) (end bool, after func())
}

func newSockWatcher() *sockWatcher { return &sockWatcher{watches: map[uint64]watch{}} }

// join counts a stream in until its leave: the set and its goroutine live
// while any stream is in, so that a WebSocket whose only watch comes and
// goes with each client message does not make a set each time. False when
// the system refuses the set (the stream then watches another way). Under
// mu.
func (g *sockWatcher) join() bool {
	if g.set == nil && !g.start() {
		return false
	}
	g.members++
	return true
}

// leave counts a stream out; after the last, the set's goroutine is told
// to end, and it closes the set (a stream that joins meanwhile makes
// another). Not closed here: os.File.Close waits for a read in progress,
// and the goroutine's may be waiting for mu, which the caller holds. Under
// mu.
func (g *sockWatcher) leave() {
	g.members--
	if g.members > 0 || g.set == nil {
		return
	}
	_ = g.set.SetReadDeadline(time.Unix(1, 0)) // in the past: the goroutine's wait ends at once
	g.set = nil
}

// add puts w's socket in the set, for a stream that has joined, and
// returns its number; false when the system refuses. Under mu.
func (g *sockWatcher) add(w watch) (uint64, bool) {
	if g.set == nil { // the set failed (see run)
		return 0, false
	}
	id := g.next
	g.next++
	ev := epollEvent(syscall.EPOLLIN|syscall.EPOLLRDHUP|-syscall.EPOLLET, id) // edge-triggered: each arrival once
	if err := syscall.EpollCtl(g.epfd, syscall.EPOLL_CTL_ADD, w.socket(), ev); err != nil {
		return 0, false
	}
	g.watches[id] = w
	return id, true
}

// remove takes watch id off the set (its descriptor still open), if it is
// on it. Under mu.
func (g *sockWatcher) remove(id uint64) {
	w, ok := g.watches[id]
	if !ok {
		return
	}
	delete(g.watches, id)
	if g.set != nil {
		_ = syscall.EpollCtl(g.epfd, syscall.EPOLL_CTL_DEL, w.socket(), nil)
	}
}

// start makes the epoll set, non-blocking and in Go's poller, and starts
// the goroutine; false when the system refuses. Under mu.
func (g *sockWatcher) start() bool {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return false
	}
	set := os.NewFile(uintptr(epfd), "relay-watch") // non-blocking: os puts it in the poller
	raw, err := set.SyscallConn()
	if err == nil {
		err = set.SetReadDeadline(time.Time{}) // fails when the poller did not take the set
	}
	if err != nil {
		set.Close()
		return false
	}
	g.set, g.epfd = set, epfd
	go g.run(set, raw)
	return true
}

// epollEvent is an event mask with a watch's number as its data (the 8
// bytes the kernel hands back, which syscall names Fd and Pad).
func epollEvent(events uint32, id uint64) *syscall.EpollEvent {
	return &syscall.EpollEvent{Events: events, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

// run takes the set's events as they come until the last stream's leave
// sets its deadline, or the set fails; then it closes the set.
func (g *sockWatcher) run(set *os.File, raw syscall.RawConn) {
	defer set.Close()
	var evs [128]syscall.EpollEvent
	var after []func()
	_ = raw.Read(func(fd uintptr) bool { // returns at the deadline, or failed
		for {
			n, err := syscall.EpollWait(int(fd), evs[:], 0)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil: // only for a bad set: the streams' writes still notice a gone client
				return true
			case n == 0:
				return false // none left: wait in the poller
			}
			g.handle(evs[:n], &after)
		}
	})
	g.mu.Lock()
	if g.set == set { // it failed: the next stream makes another set
		g.set = nil
	}
	g.mu.Unlock()
}

// handle hands each event to its watch, under mu, then calls the afters of
// the watches that ended, without it.
func (g *sockWatcher) handle(evs []syscall.EpollEvent, after *[]func()) {
	*after = (*after)[:0]
	g.mu.Lock()
	for _, ev := range evs {
		id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		w, ok := g.watches[id]
		if !ok {
			continue
		}
		if end, then := w.ready(ev.Events); end {
			g.remove(id)
			if then != nil {
				*after = append(*after, then)
			}
		}
	}
	g.mu.Unlock()
	for _, f := range *after {
		f()
	}
}

// socketFD is conn's socket and its descriptor, or nil and -1 when conn has
// none of its own (TLS). The number stays conn's until conn is closed.
func socketFD(conn net.Conn) (syscall.RawConn, int) {
	raw := rawSocket(conn)
	fd := -1
	if raw != nil {
		_ = raw.Control(func(f uintptr) { fd = int(f) })
	}
	return raw, fd
}

// watch calls cancel when an SSE stream's client goes away, and returns
// stop, which the stream calls before it closes conn (stop may close it).
// A connection without a socket of its own (TLS) is watched by a goroutine
// reading it.
func (g *sockWatcher) watch(conn net.Conn, cancel context.CancelFunc) (stop func()) {
	_, fd := socketFD(conn)
	if fd < 0 {
		return watchByReading(conn, cancel)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.join() {
		return watchByReading(conn, cancel)
	}
	id, ok := g.add(&goneWatch{fd: fd, cancel: cancel})
	if !ok {
		g.leave()
		return watchByReading(conn, cancel)
	}
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.remove(id)
		g.leave()
	}
}

// goneWatch is an SSE stream's client: it sends nothing, and its socket
// is watched for the client's going away.
type goneWatch struct {
	fd     int
	sent   int // bytes the client has sent, read and dropped
	cancel context.CancelFunc
}

func (w *goneWatch) socket() int { return w.fd }

// ready ends the stream when the client has gone, given the socket's
// events: its side closed, reset, or failed; else what it sent is read and
// dropped, without waiting, until nothing is left (a close queued behind
// it would never arrive otherwise), and a client that has sent more than
// maxSSEClientBytes is ended.
func (w *goneWatch) ready(events uint32) (bool, func()) {
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		return true, w.cancel
	}
	var b [4 << 10]byte
	for w.sent <= maxSSEClientBytes {
		n, _, err := syscall.Recvfrom(w.fd, b[:], syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false, nil
		case err != nil || n == 0:
			return true, w.cancel
		}
		w.sent += n
	}
	return true, w.cancel
}
