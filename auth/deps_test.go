package auth

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDeps keeps auth narrow: no Echo or Redis anywhere, and net/http only
// in request.go.
func TestDeps(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.Contains(path, "labstack/echo"), strings.Contains(path, "go-redis"),
				strings.HasPrefix(path, "github.com/relaydev/relay/") && path != "github.com/relaydev/relay/events",
				strings.HasPrefix(path, "net/http") && name != "request.go":
				t.Errorf("%s imports %s, which auth must not", name, path)
			}
		}
	}
}
