package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is relay's release, set when the binary is built:
//
//	go build -ldflags "-X main.version=v1.4.0" ./app
//
// (the Dockerfile's VERSION build argument and `task build` do). Left empty,
// relayVersion reads what the Go toolchain recorded instead. Only the linker
// writes it: read it through relayVersion.
var version string

// relayVersion is the version relay reports: in `relay version`, the
// startup log line and /healthz.
func relayVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(version, info)
}

// versionOf picks the version to report: the one set at link time; else the
// module version the toolchain recorded, when it is a release of a clean
// tree (`go install github.com/relaydev/relay/app@v1.4.0`, or `go build` at a
// tagged commit); else "devel+<commit>", with "-dirty" when the tree had
// uncommitted changes (`go build` in a checkout); else "devel" (no commit
// recorded: `go test`, or a build outside a checkout).
func versionOf(linked string, info *debug.BuildInfo) string {
	if linked != "" {
		return linked
	}
	if info == nil {
		return "devel"
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12] // as in Go's pseudo-versions
	}
	// A tag the toolchain found for this commit, or the version `go install`
	// fetched; not a pseudo-version made up of the commit itself.
	if v := info.Main.Version; v != "" && v != "(devel)" && !dirty && !strings.HasSuffix(v, "+dirty") &&
		(rev == "" || !strings.Contains(v, rev)) {
		return v
	}
	if rev == "" {
		return "devel"
	}
	if dirty {
		return "devel+" + rev + "-dirty"
	}
	return "devel+" + rev
}

// printVersion is `relay version` and `relay -version`.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "relay %s (%s %s/%s)\n", relayVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
