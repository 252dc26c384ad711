//go:build !linux

package redistest

import "syscall"

// dieWithParent has no portable equivalent outside Linux: there the
// throwaway redis-server outlives a killed test binary (it holds no data).
func dieWithParent() *syscall.SysProcAttr { return nil }
