package transport

import "github.com/relaydev/relay/auth"

// HandleClientMessage answers one WebSocket client message as the reader of
// a connection of id would (projects: the presence channels it reads), for
// tests of the client-message parser without a connection: the reply to
// write, nil when there is none.
func (s *Server) HandleClientMessage(id *auth.Identity, projects []string, raw []byte) []byte {
	ws := &wsConn{srv: s, id: id, cfg: &s.cfg, projects: projects, log: s.logger}
	return ws.handle(raw)
}
