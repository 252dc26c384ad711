package transport

// LimitCounts returns the streams user and ip hold open, and how many client
// addresses the server remembers after forgetting the idle ones.
func LimitCounts(s *Server, user, ip string) (users, ips, tracked int) {
	return s.limits.counts(user, ip)
}
