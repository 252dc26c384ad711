package transport

import "github.com/relaydev/relay/auth"

// LimitCounts returns the streams user and ip hold open, and how many client
// addresses the server remembers after forgetting the idle ones.
func LimitCounts(s *Server, user, ip string) (users, ips, tracked int) {
	return s.limits.counts(user, ip)
}

// HandleClientMessage answers one WebSocket client message as the reader of
// a fresh connection of id would (projects: the presence channels it reads),
// for tests of the client-message parser without a connection: the message
// to write, nil when there is none (or when the connection would be closed).
func (s *Server) HandleClientMessage(id *auth.Identity, projects []string, raw []byte) []byte {
	ws := &wsConn{srv: s, id: id, cfg: &s.cfg, projects: projects, log: s.logger, quota: s.limits.conn(id.UserID)}
	return ws.handle(raw).msg
}
