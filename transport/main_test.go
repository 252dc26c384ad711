package transport_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// stream's writer and reader, every hub and store goroutine must end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
