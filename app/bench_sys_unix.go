//go:build unix

package main

import (
	"fmt"
	"syscall"
	"time"
)

// raiseFileLimit raises this process's soft limit on open files to its hard
// limit (children inherit it) and returns the limit now in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: read the open file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("bench: raise the open file limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// selfCPU is this process's user and system CPU time, all its threads
// (-1, -1: unknown).
func selfCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1, -1
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
