package events_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps events the centre: nothing it imports, even indirectly,
// speaks HTTP or Redis or belongs to another relay package.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := []string{"net/http", "github.com/redis/", "github.com/labstack/", "github.com/gorilla/",
		"github.com/golang-jwt/"}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		if strings.HasPrefix(dep, "github.com/relaydev/relay/") && dep != "github.com/relaydev/relay/events" {
			t.Errorf("events imports %s: dependencies point inward, into events, never out", dep)
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("events depends on %s, which belongs in transport, store or auth", dep)
			}
		}
	}
}
