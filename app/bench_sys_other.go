//go:build !unix

package main

import "time"

// raiseFileLimit has no limit to raise off Unix and reports none known
// (0), so the scale scenario (--connections), which also reads the
// server's memory and CPU from /proc, is refused there.
func raiseFileLimit() (uint64, error) { return 0, nil }

// selfCPU is unknown (-1, -1) off Unix.
func selfCPU() (user, sys time.Duration) { return -1, -1 }
