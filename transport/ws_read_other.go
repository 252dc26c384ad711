//go:build !linux

package transport

import "net"

// frameWaiter waits for frames on Linux only (see ws_read_linux.go).
type frameWaiter struct{}

// newFrameWaiter returns nil: off Linux the reader waits in its read.
func newFrameWaiter(net.Conn) *frameWaiter { return nil }

// await returns at once: the read waits.
func (*frameWaiter) await(func() error) error { return nil }
