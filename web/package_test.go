package web_test

import (
	"encoding/json"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/relaydev/relay/web"
)

// manifest is the part of a package.json these tests compare.
type manifest struct {
	Name                 string                         `json:"name"`
	Version              string                         `json:"version"`
	Type                 string                         `json:"type"`
	Main                 string                         `json:"main"`
	Types                string                         `json:"types"`
	Exports              map[string]json.RawMessage     `json:"exports"`
	Files                []string                       `json:"files"`
	PeerDependencies     map[string]string              `json:"peerDependencies"`
	PeerDependenciesMeta map[string]map[string]bool     `json:"peerDependenciesMeta"`
	TypesVersions        map[string]map[string][]string `json:"typesVersions"`
}

func readManifest(t *testing.T, file string) manifest {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

// exportTargets flattens exports into "subpath condition" -> target.
func exportTargets(t *testing.T, m manifest) map[string]string {
	t.Helper()
	out := map[string]string{}
	for sub, raw := range m.Exports {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out[sub] = s
			continue
		}
		var conds map[string]string
		if err := json.Unmarshal(raw, &conds); err != nil {
			t.Fatalf("exports[%q]: %v", sub, err)
		}
		for c, target := range conds {
			out[sub+" "+c] = target
		}
	}
	return out
}

// TestPackageManifests keeps the npm package versioned with relay and the
// root package.json (the git-URL install) pointing at the same files as
// web/package.json (the path install).
func TestPackageManifests(t *testing.T) {
	pkg := readManifest(t, "package.json")
	root := readManifest(t, "../package.json")
	if pkg.Version != web.Version || root.Version != web.Version {
		t.Fatalf("versions: web.Version %s, web/package.json %s, package.json %s: bump them together", web.Version, pkg.Version, root.Version)
	}
	if pkg.Name != root.Name || pkg.Type != "module" || root.Type != "module" {
		t.Errorf("name/type: web %s %s, root %s %s; want one name and type module", pkg.Name, pkg.Type, root.Name, root.Type)
	}
	want := map[string]string{
		". types": "./relay.d.ts", ". default": "./relay.js",
		"./react types": "./react.d.ts", "./react default": "./react.js",
		"./package.json": "./package.json",
	}
	if got := exportTargets(t, pkg); !reflect.DeepEqual(got, want) {
		t.Errorf("web/package.json exports: got %v, want %v", got, want)
	}
	wantRoot := map[string]string{}
	for k, v := range want {
		if k != "./package.json" {
			v = "./web/" + strings.TrimPrefix(v, "./")
		}
		wantRoot[k] = v
	}
	if got := exportTargets(t, root); !reflect.DeepEqual(got, wantRoot) {
		t.Errorf("package.json exports: got %v, want %v", got, wantRoot)
	}
	if pkg.Main != "./relay.js" || pkg.Types != "./relay.d.ts" || root.Main != "./web/relay.js" || root.Types != "./web/relay.d.ts" {
		t.Errorf("main/types: web %s %s, root %s %s", pkg.Main, pkg.Types, root.Main, root.Types)
	}
	// TypeScript's old "node" resolution ignores exports: ./react needs typesVersions at the root.
	if got := root.TypesVersions["*"]["react"]; !slices.Equal(got, []string{"./web/react.d.ts"}) {
		t.Errorf("package.json typesVersions react: got %v", got)
	}
	var prefixed []string
	for _, f := range pkg.Files {
		prefixed = append(prefixed, "web/"+f)
	}
	if !slices.Equal(root.Files, prefixed) {
		t.Errorf("files: root %v, want web/'s %v under web/", root.Files, prefixed)
	}
	if !reflect.DeepEqual(pkg.PeerDependencies, root.PeerDependencies) || !reflect.DeepEqual(pkg.PeerDependenciesMeta, root.PeerDependenciesMeta) {
		t.Errorf("peer dependencies differ: web %v %v, root %v %v", pkg.PeerDependencies, pkg.PeerDependenciesMeta, root.PeerDependencies, root.PeerDependenciesMeta)
	}
	for _, peer := range []string{"react", "@types/react"} {
		if pkg.PeerDependencies[peer] == "" || !pkg.PeerDependenciesMeta[peer]["optional"] {
			t.Errorf("%s: want an optional peer dependency", peer)
		}
	}
}

// TestPackageFilesShipEveryModule: every module relay serves is in the
// package, and every file the package lists exists.
func TestPackageFilesShipEveryModule(t *testing.T) {
	pkg := readManifest(t, "package.json")
	for _, f := range pkg.Files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("files lists %s: %v", f, err)
		}
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasSuffix(name, ".test.js") || !(path.Ext(name) == ".js" || strings.HasSuffix(name, ".d.ts")) {
			continue
		}
		if !slices.Contains(pkg.Files, name) {
			t.Errorf("%s is not in package.json files: an import of it would fail after npm install", name)
		}
	}
}
