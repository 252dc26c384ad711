//go:build !linux

package transport

import (
	"context"
	"net"
)

// goneWatcher watches each stream's client with a goroutine reading its
// connection (see watchByReading); Linux has one epoll set per server.
type goneWatcher struct{}

func newGoneWatcher() *goneWatcher { return &goneWatcher{} }

func (*goneWatcher) watch(conn net.Conn, cancel context.CancelFunc) (stop func()) {
	return watchByReading(conn, cancel)
}
