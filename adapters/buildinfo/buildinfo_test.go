package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	cases := []struct {
		name string
		bi   debug.BuildInfo
		want Info
	}{
		{"release with revision", debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}},
			Info{"v1.2.3", "abc123", "go1.27.3"}},
		{"checkout with changes", debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}},
			Info{"devel", "abc123-dirty", "go1.27.3"}},
		{"no VCS data", debug.BuildInfo{GoVersion: "go1.27.3"}, Info{"devel", "unknown", "go1.27.3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fromBuildInfo(&c.bi); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// The test binary carries build information: its Go version is this one.
func TestReadNamesTheRunningToolchain(t *testing.T) {
	if got := Read(); got.GoVersion != runtime.Version() {
		t.Errorf("GoVersion %q, want %q", got.GoVersion, runtime.Version())
	}
}
