package redistest

import (
	"errors"
	"testing"
)

// TestLaunchRefusesATakenPort: a redis-server launched on a port another
// one holds fails to bind and exits, while the other answers there; launch
// must report the port taken rather than hand the other server over as the
// new one (a test would then pause, stop and write to a Redis not its own).
func TestLaunchRefusesATakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-servers; -short skips it")
	}
	held := NewServerWith(t, NoPersistence)
	cmd, err := launch(held.port, t.TempDir(), NoPersistence)
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("launch on %s, which pid %d holds: got %v, want errPortTaken", held.Addr, held.PID(), err)
	}
	if pid, ok := serverPID(held.Addr); !ok || pid != held.PID() {
		t.Errorf("serverPID(%s): got %d (answered %v), want %d", held.Addr, pid, ok, held.PID())
	}
}
