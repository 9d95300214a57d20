// Package testhost gives tests the machinery of a real node: network
// namespaces that stand for hosts (joined by a bridge in a namespace of its
// own, as the local topology has them) and a containerd daemon with its own
// config, root, state and a short socket path. Everything it makes is
// removed when the test ends, also when the test fails: processes by PID,
// containers, mounts, cgroups and namespaces.
package testhost

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubeish/kubeish/pkg/poll"
)

// Require skips the test unless it runs as root with the named commands
// on PATH; the message says what is missing.
func Require(t testing.TB, cmds ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, containerd, cgroups): run the tests as root, as CI does")
	}
	var missing []string
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		t.Skipf("needs %s on PATH (apt-get install containerd runc containernetworking-plugins iptables iproute2)", strings.Join(missing, ", "))
	}
}

// Containerd is a containerd daemon the test started.
type Containerd struct {
	// Address is the gRPC socket (short, under /tmp).
	Address string
	// Dir holds config, root and state.
	Dir string
	// CgroupParents are removed (with everything under them) at cleanup.
	CgroupParents []string

	cmd *exec.Cmd
}

// StartContainerd starts containerd with CRI disabled, its own root, state
// and socket, and cgroupfs; cleanup stops it and removes every task,
// container, shim, mount and cgroup it made. Add the cgroup parents the
// test's containers use to CgroupParents.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	Require(t, "containerd", "runc", "containerd-shim-runc-v2")
	// Unix socket paths must stay under 107 bytes, so not t.TempDir().
	dir, err := os.MkdirTemp("/tmp", "kctd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Address: filepath.Join(dir, "c.sock"), Dir: dir}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc", filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command("containerd", "--config", cfgPath, "--log-level", "info")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	t.Cleanup(func() { c.cleanup(t); logf.Close() })
	poll.Until(t, 20*time.Second, "containerd listening on "+c.Address, func() (bool, error) {
		conn, err := net.Dial("unix", c.Address)
		if err != nil {
			b, _ := os.ReadFile(logf.Name())
			return false, fmt.Errorf("%v\n%s", err, tail(b, 3000))
		}
		conn.Close()
		return true, nil
	})
	return c
}

// KillContainers kills every process in the test's cgroup parents (the
// containers), for cleanups that must run before the daemon's own.
func (c *Containerd) KillContainers() {
	for _, parent := range c.CgroupParents {
		killCgroupTree(parent)
	}
}

// Log returns the daemon's log (for failure messages).
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	return string(b)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (c *Containerd) cleanup(t testing.TB) {
	// 1. Every process in the test's cgroups: the containers.
	for _, parent := range c.CgroupParents {
		killCgroupTree(parent)
	}
	// 2. The shims this daemon started (they name its socket on their
	// command line), then the daemon itself.
	for _, pid := range pidsWithArg(c.Address) {
		if pid != c.cmd.Process.Pid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	// Shims may have been started in between.
	for _, pid := range pidsWithArg(c.Address) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, parent := range c.CgroupParents {
		killCgroupTree(parent)
		removeCgroupTree(parent)
	}
	UnmountUnder(c.Dir)
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Logf("removing %s: %v", c.Dir, err)
	}
}

// pidsWithArg returns the processes with arg as one of their arguments.
func pidsWithArg(arg string) []int {
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

func killCgroupTree(parent string) {
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

// removeCgroupTree removes parent and its children in every hierarchy,
// deepest first, waiting a little for killed processes to leave.
func removeCgroupTree(parent string) {
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

// WaitFor polls cond every interval until it returns true or the timeout
// passes; it returns cond's last error for the failure message.
func WaitFor(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last == nil {
				last = fmt.Errorf("condition not met")
			}
			return fmt.Errorf("after %v: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
