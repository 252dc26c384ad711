package transport

import (
	"context"
	"net"
	"sync"
	"syscall"
)

// On Linux, a hijacked SSE stream's client is watched from one epoll set
// per server instead of a goroutine per stream parked in a read: the
// goroutine and its 2 KiB stack were a fifth of an idle SSE stream's
// memory. One goroutine waits in epoll_wait for every watched socket; when
// the client closes its side, resets, or sends anything (an SSE client
// sends nothing: what comes is read and dropped, as the read did), it
// cancels that stream's context, or drains the socket.
//
// A socket's descriptor number is reused once it is closed, so the set
// identifies each watch by a number of its own (the event's data), not by
// the descriptor, and a stream ends its watch (stop) before it closes its
// connection: the watcher never reads a descriptor that another
// connection has taken since.

// goneWatcher is a server's epoll set of streams' sockets.
type goneWatcher struct {
	mu      sync.Mutex
	watches map[uint64]*goneWatch
	next    uint64 // the next watch's number
	epfd    int    // -1: no goroutine runs
	wake    [2]int // a pipe: a byte on it ends the goroutine
}

type goneWatch struct {
	fd     int
	sent   int // bytes the client has sent, read and dropped
	cancel context.CancelFunc
}

func newGoneWatcher() *goneWatcher {
	return &goneWatcher{watches: map[uint64]*goneWatch{}, epfd: -1}
}

// watch calls cancel when conn's client goes away, and returns stop, which
// the stream calls before it closes conn (stop may close it). A connection
// without a socket of its own (TLS) is watched by a goroutine reading it.
func (g *goneWatcher) watch(conn net.Conn, cancel context.CancelFunc) (stop func()) {
	raw := rawSocket(conn)
	fd := -1
	if raw != nil {
		_ = raw.Control(func(f uintptr) { fd = int(f) })
	}
	if fd < 0 {
		return watchByReading(conn, cancel)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epfd < 0 && !g.start() {
		return watchByReading(conn, cancel)
	}
	id := g.next
	g.next++
	ev := epollEvent(syscall.EPOLLIN|syscall.EPOLLRDHUP|-syscall.EPOLLET, id) // edge-triggered: each arrival once
	if err := syscall.EpollCtl(g.epfd, syscall.EPOLL_CTL_ADD, fd, ev); err != nil {
		g.stopIfIdle()
		return watchByReading(conn, cancel)
	}
	g.watches[id] = &goneWatch{fd: fd, cancel: cancel}
	return func() { g.unwatch(id) }
}

// unwatch takes watch id off the set (its descriptor still open).
func (g *goneWatcher) unwatch(id uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w, ok := g.watches[id]
	if !ok {
		return
	}
	delete(g.watches, id)
	_ = syscall.EpollCtl(g.epfd, syscall.EPOLL_CTL_DEL, w.fd, nil)
	g.stopIfIdle()
}

// start makes the epoll set and its wake pipe and starts the goroutine;
// false when the system refuses them. Under mu.
func (g *goneWatcher) start() bool {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return false
	}
	ev := epollEvent(syscall.EPOLLIN, wakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return false
	}
	g.epfd, g.wake = epfd, p
	go g.run(epfd, p)
	return true
}

// stopIfIdle ends the goroutine once no stream is watched: it closes the
// set and the pipe on its way out. Under mu.
func (g *goneWatcher) stopIfIdle() {
	if len(g.watches) > 0 || g.epfd < 0 {
		return
	}
	_, _ = syscall.Write(g.wake[1], []byte{1})
	g.epfd = -1
}

// wakeID is the wake pipe's number in the set: no watch has it.
const wakeID = ^uint64(0)

// epollEvent is an event mask with a watch's number as its data (the 8
// bytes the kernel hands back, which syscall names Fd and Pad).
func epollEvent(events uint32, id uint64) *syscall.EpollEvent {
	return &syscall.EpollEvent{Events: events, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

// run waits for the set's events until the wake pipe has a byte.
func (g *goneWatcher) run(epfd int, wake [2]int) {
	defer func() {
		syscall.Close(epfd)
		syscall.Close(wake[0])
		syscall.Close(wake[1])
	}()
	var evs [128]syscall.EpollEvent
	var gone []context.CancelFunc
	for {
		n, err := syscall.EpollWait(epfd, evs[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil { // only for a bad set: the streams' writes still notice a gone client
			g.mu.Lock()
			if g.epfd == epfd {
				g.epfd = -1 // the next watch starts another set; nothing writes to this one's pipe
			}
			g.mu.Unlock()
			return
		}
		gone = gone[:0]
		woken := false // by the wake pipe: the set's last watch was ended by its stream
		g.mu.Lock()
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == wakeID {
				woken = true
				continue
			}
			if w, ok := g.watches[id]; ok && w.ended(ev.Events) {
				delete(g.watches, id)
				_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, w.fd, nil)
				gone = append(gone, w.cancel)
			}
		}
		// The last watch ended here: the goroutine ends (a stream that
		// comes next starts another).
		last := len(g.watches) == 0 && g.epfd == epfd
		if last {
			g.epfd = -1
		}
		g.mu.Unlock()
		for _, cancel := range gone {
			cancel()
		}
		if last || woken {
			return
		}
	}
}

// ended reports whether the client has gone, given the socket's events:
// its side closed, reset, or failed; else what it sent is read and
// dropped, without waiting, until nothing is left (the set is
// edge-triggered: what is left unread would not be reported again, and a
// close queued behind it would never arrive), and a client that has sent
// more than maxSSEClientBytes is ended. Under the watcher's mu, so the
// descriptor is still this stream's.
func (w *goneWatch) ended(events uint32) bool {
	if events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		return true
	}
	var b [4 << 10]byte
	for w.sent <= maxSSEClientBytes {
		n, _, err := syscall.Recvfrom(w.fd, b[:], syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil || n == 0:
			return true
		}
		w.sent += n
	}
	return true
}
