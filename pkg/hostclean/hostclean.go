// Package hostclean removes what containers leave on a machine when their
// daemons are gone: processes in a cgroup tree, the cgroups themselves,
// shims that name a socket, and mount points under a folder. Test hosts
// (pkg/testhost) and the local cluster's teardown (hack/localup) use it;
// both act only on the cgroup parents, sockets and folders they made.
package hostclean

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// PidsWithArg returns the processes with arg as one of their arguments.
func PidsWithArg(arg string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// cgroupRoots are the mounted hierarchies (v1 controllers and the v2 root).
func cgroupRoots() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var roots []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				roots = append(roots, fields[4])
			}
		}
	}
	return roots
}

// KillCgroupTree SIGKILLs every process in cgroup parent and below it,
// in every mounted hierarchy (v1 controllers and the v2 root).
func KillCgroupTree(parent string) {
	for _, root := range cgroupRoots() {
		_ = filepath.Walk(filepath.Join(root, parent), func(p string, info os.FileInfo, err error) error {
			if err != nil || !info.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, l := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(l); err == nil && pid > 1 && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// RemoveCgroupTree removes parent and its children in every hierarchy,
// deepest first, waiting a little for killed processes to leave.
func RemoveCgroupTree(parent string) {
	for _, root := range cgroupRoots() {
		var dirs []string
		_ = filepath.Walk(filepath.Join(root, parent), func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			// A killed process leaves its cgroup a moment later; give up
			// after a second, leaving the directory to the next run.
			_ = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, time.Second, true, func(context.Context) (bool, error) {
				err := syscall.Rmdir(d)
				return err == nil || os.IsNotExist(err), nil
			})
		}
		// Remove now-empty ancestors below the hierarchy root (e.g. /kubeish).
		for d := filepath.Dir(filepath.Join(root, parent)); len(d) > len(root); d = filepath.Dir(d) {
			if syscall.Rmdir(d) != nil {
				break
			}
		}
	}
}

// UnmountUnder lazily unmounts every mount point under dir, deepest first.
func UnmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 {
			p := unescapeMount(fields[4])
			if p == dir || strings.HasPrefix(p, dir+"/") {
				points = append(points, p)
			}
		}
	}
	f.Close()
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
