// Package buildinfo reads what the Go toolchain recorded in the binary
// (module version, VCS revision, Go version), for `usersvc version` and the
// usersvc_build_info metric, so that both name the same build.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Info identifies a build.
type Info struct {
	Version   string // module version, "devel" for a build from a checkout
	Revision  string // VCS revision, "-dirty" appended for uncommitted changes; "unknown" without VCS data
	GoVersion string // the toolchain that built the binary
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown", Revision: "unknown", GoVersion: "unknown"}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, Revision: "unknown", GoVersion: bi.GoVersion}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "devel"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "unknown" {
		info.Revision += "-dirty"
	}
	return info
}

// String is the one-line form `usersvc version` prints.
func (i Info) String() string {
	return fmt.Sprintf("usersvc %s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}
