package stats

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Mode is the cgroup layout of the machine.
type Mode int

// The layouts the reader understands. Hybrid machines (v1 controllers plus
// an empty unified hierarchy at unified/) read as V1: that is where the
// cpuacct and memory controllers are.
const (
	ModeUnknown Mode = iota
	ModeV1
	ModeV2
)

func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "cgroup v1"
	case ModeV2:
		return "cgroup v2"
	}
	return "unknown cgroup layout"
}

// DetectMode tells the layout of the cgroup filesystem fsys (rooted at
// e.g. /sys/fs/cgroup): v2 has cgroup.controllers at its root, v1 has a
// folder per controller.
func DetectMode(fsys fs.FS) Mode {
	if _, err := fs.Stat(fsys, "cgroup.controllers"); err == nil {
		return ModeV2
	}
	if _, err := fs.Stat(fsys, "cpuacct/cpuacct.usage"); err == nil {
		return ModeV1
	}
	if _, err := fs.Stat(fsys, "memory/memory.usage_in_bytes"); err == nil {
		return ModeV1
	}
	return ModeUnknown
}

// Usage is what one cgroup has used, read at one moment.
type Usage struct {
	// CPUNanos is the cumulative CPU time of all its tasks, all cores.
	CPUNanos uint64
	// MemoryUsage is the memory charged to it (page cache included).
	MemoryUsage uint64
	// WorkingSet is MemoryUsage minus the inactive file cache: what
	// cannot be reclaimed cheaply, and what the OOM killer and evictions
	// look at (cAdvisor's definition).
	WorkingSet uint64
	// RSS is anonymous memory (v1 total_rss, v2 anon).
	RSS uint64
	// PageFaults and MajorPageFaults are cumulative counts.
	PageFaults, MajorPageFaults uint64
}

// ErrNoCgroup means the cgroup does not exist (the container is gone, or
// never had one in this controller).
var ErrNoCgroup = errors.New("no such cgroup")

// ReadUsage reads the usage of the cgroup at cgroupPath (as containers see
// it, e.g. /kubeish/node-1/pod<uid>/<container-id>) from the cgroup
// filesystem fsys in the given layout. It only reads files, so it is
// tested on sample trees.
func ReadUsage(fsys fs.FS, mode Mode, cgroupPath string) (Usage, error) {
	rel := strings.TrimPrefix(path.Clean("/"+cgroupPath), "/")
	join := func(parts ...string) string {
		p := path.Join(parts...)
		if p == "" {
			return "."
		}
		return p
	}
	switch mode {
	case ModeV1:
		return readV1(fsys, join("cpuacct", rel), join("memory", rel))
	case ModeV2:
		return readV2(fsys, join(rel))
	}
	return Usage{}, fmt.Errorf("reading cgroup %s: %v", cgroupPath, mode)
}

func readV1(fsys fs.FS, cpuDir, memDir string) (Usage, error) {
	var u Usage
	cpu, err := readUint(fsys, path.Join(cpuDir, "cpuacct.usage"))
	if err != nil {
		return u, err
	}
	u.CPUNanos = cpu
	usage, err := readUint(fsys, path.Join(memDir, "memory.usage_in_bytes"))
	if err != nil {
		return u, err
	}
	st, err := readKeyValues(fsys, path.Join(memDir, "memory.stat"))
	if err != nil {
		return u, err
	}
	u.MemoryUsage = usage
	// The total_ counters include child cgroups, as usage_in_bytes does
	// (use_hierarchy), so pod and node figures add up their containers.
	u.WorkingSet = workingSet(usage, st["total_inactive_file"])
	u.RSS = st["total_rss"]
	u.PageFaults = st["total_pgfault"]
	u.MajorPageFaults = st["total_pgmajfault"]
	return u, nil
}

func readV2(fsys fs.FS, dir string) (Usage, error) {
	var u Usage
	cpu, err := readKeyValues(fsys, path.Join(dir, "cpu.stat"))
	if err != nil {
		return u, err
	}
	u.CPUNanos = cpu["usage_usec"] * 1000
	usage, err := readUint(fsys, path.Join(dir, "memory.current"))
	if err != nil {
		return u, err
	}
	st, err := readKeyValues(fsys, path.Join(dir, "memory.stat"))
	if err != nil {
		return u, err
	}
	u.MemoryUsage = usage
	u.WorkingSet = workingSet(usage, st["inactive_file"])
	u.RSS = st["anon"]
	u.PageFaults = st["pgfault"]
	u.MajorPageFaults = st["pgmajfault"]
	return u, nil
}

// workingSet is usage less the inactive file cache, never below zero (the
// two are not read atomically).
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

func readUint(fsys fs.FS, name string) (uint64, error) {
	b, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", name, ErrNoCgroup)
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// readKeyValues parses "key value" lines (memory.stat, cpu.stat).
func readKeyValues(fsys fs.FS, name string) (map[string]uint64, error) {
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNoCgroup)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(s.Text()), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue // a field we do not read (or a negative v1 quirk)
		}
		out[k] = n
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
