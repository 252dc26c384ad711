package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	const rev = "e82bbfd37d97ff88e4a36d874454d9a9519dfcf0"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	cases := []struct {
		name   string
		linked string
		info   *debug.BuildInfo
		want   string
	}{
		{"set at link time", "v1.4.0", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201222020-e82bbfd37d97"}, Settings: vcs("false")}, "v1.4.0"},
		{"go install at a release", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"go build at a tag", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: vcs("false")}, "v1.4.0"},
		{"go build, clean", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201222020-e82bbfd37d97"}, Settings: vcs("false")}, "devel+e82bbfd37d97"},
		{"go build, dirty", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201222020-e82bbfd37d97+dirty"}, Settings: vcs("true")}, "devel+e82bbfd37d97-dirty"},
		{"go build at a tag, dirty", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0+dirty"}, Settings: vcs("true")}, "devel+e82bbfd37d97-dirty"},
		{"no version control (go run with -buildvcs=false)", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{"no build info", "", nil, "devel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := versionOf(c.linked, c.info); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
