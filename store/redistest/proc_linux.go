package redistest

import "syscall"

// dieWithParent makes the kernel kill the child when the thread that started
// it exits; the Go runtime keeps its threads until the process exits, so the
// throwaway redis-server ends with the test binary, however it ends.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
