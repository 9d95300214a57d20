// Package testhost gives tests the machinery of a real node: network
// namespaces that stand for hosts (joined by a bridge in a namespace of its
// own, as the local topology has them) and a containerd daemon with its own
// config, root, state and a short socket path. Everything it makes is
// removed when the test ends, also when the test fails: processes by PID,
// containers, mounts, cgroups and namespaces.
package testhost

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeish/kubeish/pkg/hostclean"
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
		hostclean.KillCgroupTree(parent)
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
		hostclean.KillCgroupTree(parent)
	}
	// 2. The shims this daemon started (they name its socket on their
	// command line), then the daemon itself.
	for _, pid := range hostclean.PidsWithArg(c.Address) {
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
	for _, pid := range hostclean.PidsWithArg(c.Address) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, parent := range c.CgroupParents {
		hostclean.KillCgroupTree(parent)
		hostclean.RemoveCgroupTree(parent)
	}
	UnmountUnder(c.Dir)
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Logf("removing %s: %v", c.Dir, err)
	}
}

// UnmountUnder lazily unmounts every mount point under dir, deepest first.
func UnmountUnder(dir string) { hostclean.UnmountUnder(dir) }

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
