//go:build !linux

package transport

import (
	"net"
	"syscall"
)

// rawSocket returns nil: off Linux every write is a net.Conn's, under a
// deadline (see sockWriter).
func rawSocket(net.Conn) syscall.RawConn { return nil }

func (b *burst) bind() {}
