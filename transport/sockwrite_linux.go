package transport

import (
	"net"
	"syscall"
)

// rawSocket is conn's socket, for sockWriter's non-blocking write, or nil
// when conn has none (a *tls.Conn has no syscall.Conn).
func rawSocket(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

func (b *burst) bind() { b.try = b.tryWrite }

// tryWrite is RawConn.Write's function: one write system call on the
// non-blocking socket, whatever it takes (b.n), and never a wait: it
// returns true whether the socket took all, part or none of b.
func (b *burst) tryWrite(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), b.b)
		if err == syscall.EINTR {
			continue
		}
		if n > 0 {
			b.n = n
		}
		return true
	}
}
