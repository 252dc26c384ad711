//go:build !linux

package transport

import (
	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
)

// upgrade upgrades the connection; off Linux the reader waits in gorilla
// (see ws_read_linux.go).
func (s *Server) upgrade(c echo.Context) (*websocket.Conn, *frameWaiter, error) {
	conn, err := s.upgrader().Upgrade(c.Response(), c.Request(), nil)
	return conn, nil, err
}

// frameWaiter waits for frames on Linux only.
type frameWaiter struct{}

// await returns at once: gorilla waits.
func (*frameWaiter) await(func() error) error { return nil }
