//go:build !linux

package transport

import (
	"context"
	"net"
)

// sockWatcher watches each SSE stream's client with a goroutine reading its
// connection (see watchByReading), and leaves a WebSocket's reader waiting
// in its read; Linux has one epoll set per server for both.
type sockWatcher struct{}

func newSockWatcher() *sockWatcher { return &sockWatcher{} }

func (*sockWatcher) watch(conn net.Conn, cancel context.CancelFunc) (stop func()) {
	return watchByReading(conn, cancel)
}
