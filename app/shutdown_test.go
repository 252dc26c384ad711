package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShutdownWithIdleConnection: a TCP connection that has sent no request
// (a browser preconnect) does not hold a shutdown for its whole timeout:
// run returns nil soon after its context ends, and the connection is closed.
func TestShutdownWithIdleConnection(t *testing.T) {
	const timeout = 4 * time.Second // under the 5 s net/http waits for such a connection
	inst := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_SHUTDOWN_TIMEOUT": timeout.String()})
	host := strings.TrimPrefix(inst.url, "http://")
	idle, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// The server accepts connections in order: once a request on a later
	// connection is answered, the idle one has been accepted (StateNew).
	resp, err := http.Get(inst.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()

	begin := time.Now()
	inst.cancel()
	select {
	case err := <-inst.done:
		close(inst.done) // stop, at cleanup, has nothing left to wait for
		if err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("run did not return within %v of its context ending", timeout+5*time.Second)
	}
	if d := time.Since(begin); d > timeout/2 {
		t.Errorf("shutdown took %v with an idle connection open, want well within the %v timeout", d, timeout)
	}
	_ = idle.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := idle.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Errorf("idle connection after shutdown: read %d bytes, %v; want it closed", n, err)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("idle connection still open after shutdown, want it closed")
	}
}
