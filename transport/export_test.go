package transport

import (
	"encoding/binary"

	"github.com/relaydev/relay/auth"
)

// LimitCounts returns the streams user and ip hold open, and how many client
// addresses the server remembers after forgetting the idle ones.
func LimitCounts(s *Server, user, ip string) (users, ips, tracked int) {
	return s.limits.counts(user, ip)
}

// HandedBeats is how many heartbeats the server's beater left to the
// streams' goroutines to send.
func HandedBeats(s *Server) int64 { return s.beats.handed.Load() }

// HandleClientMessage answers one WebSocket client message as the reader of
// a fresh connection of id would (projects: the presence channels it reads),
// for tests of the client-message parser without a connection: the message
// to write, nil when there is none (or when the connection would be closed).
func (s *Server) HandleClientMessage(id *auth.Identity, projects []string, raw []byte) []byte {
	ws := &wsConn{srv: s, id: id, cfg: &s.cfg, projects: projects, quota: s.limits.conn(id.UserID)}
	return ws.handle(raw).msg
}

// AppendClientFrame appends a client frame of first byte b0 (FIN, reserved
// bits and opcode) carrying payload, masked as a client's must be (RFC 6455
// §5.3) or, for tests of that rule, not.
func AppendClientFrame(b []byte, b0 byte, masked bool, payload []byte) []byte {
	mask := byte(0x80)
	if !masked {
		mask = 0
	}
	b = append(b, b0)
	switch n := len(payload); {
	case n < 126:
		b = append(b, mask|byte(n))
	case n <= 0xffff:
		b = binary.BigEndian.AppendUint16(append(b, mask|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, mask|127), uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{0x1f, 0x2e, 0x3d, 0x4c}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}
