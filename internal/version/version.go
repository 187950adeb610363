// Package version says which Huabu this is: the release's tag (set by the
// release build with -ldflags "-X github.com/huabu/huabu/internal/version.Version=v1.2.3"),
// else the module version `go install …@vX` records, else "dev".
package version

import "runtime/debug"

// Version is set at link time by release builds.
var Version = ""

// String returns the version of this binary.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
