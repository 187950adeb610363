package gcpolicy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// Percent is the collector's GOGC unless the environment sets one: a
// collection when the heap has grown by twice what was live after the last
// (Go's default is once). A broadcast or an ingestion burst allocates
// short-lived rows, maps and buffers by the gigabyte over a live heap of
// ~100 MiB; at Go's default the collector ran ~4.4 of the million's ~20
// CPU-seconds (docs/performance.md). The price is heap: up to three times
// the live heap instead of two.
const Percent = 200

// ContainerShare is the part of the container's memory limit given to Go's
// heap as its soft limit (GOMEMLIMIT): the rest is for what Go does not
// count — SQLite's page caches (up to 64 MiB per connection), the embedded
// Temporal server's SQLite, thread stacks. Near the limit the collector
// works harder instead of the kernel killing the process.
const ContainerShare = 0.6

// Policy is what the collector does now, and where each setting came from.
type Policy struct {
	Percent       int    // GOGC
	PercentFrom   string // "GOGC" (the environment) or "huabu"
	MemoryLimit   int64  // bytes; math.MaxInt64: none
	MemoryLimitOf string // "GOMEMLIMIT", "container" or "none"
}

func (p Policy) String() string {
	limit := "none"
	if p.MemoryLimit != math.MaxInt64 {
		limit = fmt.Sprintf("%d MiB", p.MemoryLimit>>20)
	}
	return fmt.Sprintf("GOGC %d (%s), memory limit %s (%s)", p.Percent, p.PercentFrom, limit, p.MemoryLimitOf)
}

// Apply sets the policy: Percent unless getenv("GOGC") is set, and
// ContainerShare of the container's limit unless getenv("GOMEMLIMIT") is
// set or there is no limit (containerLimit reports none). Go's runtime has
// read GOGC and GOMEMLIMIT itself, so what the environment says holds as
// it does for any Go program.
func Apply(getenv func(string) string, containerLimit func() (int64, bool)) Policy {
	p := Policy{PercentFrom: "GOGC", MemoryLimitOf: "GOMEMLIMIT"}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(Percent)
		p.PercentFrom = "huabu"
	}
	p.Percent = debug.SetGCPercent(-1)
	debug.SetGCPercent(p.Percent)
	if getenv("GOMEMLIMIT") == "" {
		p.MemoryLimitOf = "none"
		if limit, ok := containerLimit(); ok {
			debug.SetMemoryLimit(int64(float64(limit) * ContainerShare))
			p.MemoryLimitOf = "container"
		}
	}
	p.MemoryLimit = debug.SetMemoryLimit(-1)
	return p
}

// CgroupLimit is the memory limit of the cgroup this process runs in, if
// it has one: the smallest limit on the way from its own cgroup (named in
// /proc/self/cgroup) up to the hierarchy's root — cgroup v2's memory.max,
// else v1's memory.limit_in_bytes. Inside a container the process's cgroup
// is the root of what it sees; under systemd (MemoryMax=) it is its unit's,
// e.g. /system.slice/huabu.service.
func CgroupLimit() (int64, bool) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	return cgroupLimit("/sys/fs/cgroup", string(self))
}

// cgroupLimit is CgroupLimit over the cgroup file system mounted at root,
// for a process whose /proc/self/cgroup reads self.
func cgroupLimit(root, self string) (int64, bool) {
	for _, line := range strings.Split(self, "\n") {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			// v2: one hierarchy, mounted at root when it is the only one.
			if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
				continue
			}
			dir, file = root, "memory.max"
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			dir, file = filepath.Join(root, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		if limit, ok := smallestUp(dir, filepath.Clean("/"+parts[2]), file); ok {
			return limit, true
		}
	}
	return 0, false
}

// smallestUp is the smallest limit in file from mount/path up to mount.
func smallestUp(mount, path, file string) (int64, bool) {
	var smallest int64
	found := false
	for {
		if b, err := os.ReadFile(filepath.Join(mount, path, file)); err == nil {
			if n, ok := parseLimit(string(b)); ok && (!found || n < smallest) {
				smallest, found = n, true
			}
		}
		if path == "/" {
			return smallest, found
		}
		path = filepath.Dir(path)
	}
}

// parseLimit reads a cgroup memory limit: "max" (v2) or a value at or
// near the largest a v1 kernel reports means none.
func parseLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}
