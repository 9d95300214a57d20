//go:build e2e

// Package e2e runs the real binaries as separate processes and checks the
// promises the cluster makes as a whole: what is applied converges, and it
// heals when parts fail. `make e2e` runs it.
//
// Until the node agent can run here, nodes are simulated in the test by
// fakeNode: it registers a Ready Node, renews its Lease and reports the pods
// bound to it as Running, the way kubeletish does through the API.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeish/kubeish/pkg/poll"
)

// bin holds the binaries built once for the whole run.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubeish-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	build := exec.Command("go", "build", "-o", dir+"/", "./apiserver", "./controller", "./scheduler")
	build.Dir = "../.."
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running component.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// cluster is a control plane of real processes on loopback.
type cluster struct {
	t      *testing.T
	dir    string
	apiURL string
	apiArg string // host:port
	client kubernetes.Interface
	config *rest.Config

	mu    sync.Mutex
	procs map[string]*proc
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newCluster starts apiserver, controller and scheduler; controllerArgs
// are added to the controller's flags.
func newCluster(t *testing.T, controllerArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), procs: map[string]*proc{}}
	port := freePort(t)
	c.apiArg = fmt.Sprintf("127.0.0.1:%d", port)
	c.apiURL = "http://" + c.apiArg
	t.Cleanup(c.stopAll)
	c.start("apiserver", filepath.Join(bin, "apiserver"),
		"--listen-address", c.apiArg, "--data-dir", filepath.Join(c.dir, "etcd"),
		"--etcd-listen-client-url", "http://127.0.0.1:0", "--etcd-listen-peer-url", "http://127.0.0.1:0",
		"--shutdown-timeout", "1s")
	c.waitReady()
	c.config = &rest.Config{Host: c.apiURL, QPS: -1}
	c.client = kubernetes.NewForConfigOrDie(c.config)
	lease := []string{"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms"}
	c.start("controller", filepath.Join(bin, "controller"), append(append([]string{
		"--server", c.apiURL, "--bind-address", "127.0.0.1:0", "--node-monitor-period", "1s"}, lease...), controllerArgs...)...)
	c.start("scheduler", filepath.Join(bin, "scheduler"), append([]string{
		"--server", c.apiURL, "--bind-address", "127.0.0.1:0"}, lease...)...)
	return c
}

func (c *cluster) start(name, path string, args ...string) {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, args: args, cmd: cmd, log: f, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
}

// kill stops a component with sig and waits for it to exit.
func (c *cluster) kill(name string, sig syscall.Signal) *proc {
	c.t.Helper()
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		c.t.Fatalf("no process %s", name)
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
	return p
}

// restart kills a component with sig and starts it again with the same flags.
func (c *cluster) restart(name string, sig syscall.Signal) {
	c.t.Helper()
	p := c.kill(name, sig)
	c.start(name, p.cmd.Path, p.args...)
	if name == "apiserver" {
		c.waitReady()
	}
}

func (c *cluster) waitReady() {
	c.t.Helper()
	poll.Until(c.t, 60*time.Second, "apiserver /readyz", func() (bool, error) {
		resp, err := http.Get(c.apiURL + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return true, nil
	})
}

// stopAll ends every process by its PID, and shows their logs when the
// test failed.
func (c *cluster) stopAll() {
	c.mu.Lock()
	names := make([]string, 0, len(c.procs))
	for n := range c.procs {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, n := range names {
		if n != "apiserver" {
			c.kill(n, syscall.SIGTERM)
		}
	}
	if _, ok := c.procs["apiserver"]; ok {
		c.kill("apiserver", syscall.SIGTERM)
	}
	if c.t.Failed() {
		for _, n := range []string{"apiserver", "controller", "scheduler"} {
			data, _ := os.ReadFile(filepath.Join(c.dir, n+".log"))
			c.t.Logf("--- %s log (last 60 lines) ---\n%s", n, tail(data, 60))
		}
	}
}

func tail(data []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
