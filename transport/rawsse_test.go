package transport_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// rawSSE opens an SSE stream on path as alice over a plain TCP connection,
// closed at the test's end, and returns it with its reader, at the status
// line.
func rawSSE(t *testing.T, host, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(4 * wait))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nAccept: text/event-stream\r\nAuthorization: Bearer " + alice(t) + "\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReaderSize(conn, 256)
}

// dialRawSSE is rawSSE's reader.
func dialRawSSE(t *testing.T, host, path string) *bufio.Reader {
	t.Helper()
	_, br := rawSSE(t, host, path)
	return br
}

func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

// readUntil reads lines until one starts with prefix.
func readUntil(t *testing.T, br *bufio.Reader, prefix string) {
	t.Helper()
	for !strings.HasPrefix(readLine(t, br), prefix) {
	}
}
