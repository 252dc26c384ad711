package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/events"
)

// errBodyTimeout is a request body that did not arrive within BodyTimeout:
// 408, and net/http closes the connection.
var errBodyTimeout = errors.New("request body too slow")

// bodyDeadline gives a request body BodyTimeout to arrive, so a client that
// trickles it cannot hold a handler and its connection for ever. It skips
// the stream routes, whose connections live for hours (a deadline left on
// them would end the stream), and requests without a body. The deadline is
// lifted as soon as the body is read to its end, so a slow store call after
// it is bounded by StoreTimeout alone. net/http sets each request's read
// deadline afresh, so nothing carries over to the next request.
func (s *Server) bodyDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if s.streamPaths[c.Path()] || r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		rc := http.NewResponseController(c.Response())
		if err := rc.SetReadDeadline(time.Now().Add(s.cfg.Limits.BodyTimeout)); err != nil {
			return next(c) // a writer without deadlines (a test recorder): nothing to bound
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		return next(c)
	}
}

// deadlineBody lifts the read deadline once the body has been read whole.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// readError is the error of a failed body read: 408 when the body did not
// arrive within BodyTimeout, else 400.
func readError(err error) error {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("the request body did not arrive in time (RELAY_BODY_TIMEOUT); send it whole and promptly: %w", errBodyTimeout)
	}
	return fmt.Errorf("read body: %v: %w", err, events.ErrInvalid)
}
