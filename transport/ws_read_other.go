//go:build !linux

package transport

// frameWatch is Linux's (see ws_read_linux.go): elsewhere the reader waits
// in its read.
type frameWatch struct{}

// frames returns nil: the reader waits in its read.
func (*sockWatcher) frames(*wsConn) *frameWatch { return nil }

func (*frameWatch) park() parking { return readOn }

func (*frameWatch) stop() bool { return false }

func (*frameWatch) take([]byte) int { return 0 }
