//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubeish/kubeish/pkg/testhost"
)

// proc is one running component.
type proc struct {
	name string
	host *testhost.Host // nil: the test's own network namespace
	path string
	args []string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

// procGroup runs the components of one cluster, each as a process with its
// output in dir/NAME.log. Its cleanup ends every process it started, by
// PID, and shows their logs when the test failed. Its methods return
// errors rather than failing a test, so that subtests can use a cluster
// their parent made.
type procGroup struct {
	t   *testing.T
	dir string

	mu      sync.Mutex
	running map[string]*proc
	logs    []string // every name ever started, in order
}

func newProcGroup(t *testing.T, dir string) *procGroup {
	g := &procGroup{t: t, dir: dir, running: map[string]*proc{}}
	t.Cleanup(func() {
		g.stopAll()
		if t.Failed() {
			g.dumpLogs()
		}
	})
	return g
}

// start runs path with args inside host (nsenter execs it, so the PID is
// the component's own).
func (g *procGroup) start(name string, host *testhost.Host, path string, args ...string) (*proc, error) {
	f, err := os.OpenFile(filepath.Join(g.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if host != nil {
		cmd = host.Command(context.Background(), path, args...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	fmt.Fprintf(f, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), path, strings.Join(args, " "))
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running[name] != nil {
		f.Close()
		return nil, fmt.Errorf("%s is already running", name)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, host: host, path: path, args: args, cmd: cmd, log: f, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	g.running[name] = p
	if !slices.Contains(g.logs, name) {
		g.logs = append(g.logs, name)
	}
	return p, nil
}

// get returns the running process name, or nil.
func (g *procGroup) get(name string) *proc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running[name]
}

// kill sends sig to a component and waits for it to exit (SIGKILL after
// 30 s).
func (g *procGroup) kill(name string, sig os.Signal) (*proc, error) {
	g.mu.Lock()
	p := g.running[name]
	delete(g.running, name)
	g.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("no process %s", name)
	}
	p.stop(sig, 30*time.Second)
	return p, nil
}

func (p *proc) stop(sig os.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	fmt.Fprintf(p.log, "=== %s: stopped (%v): %v\n", time.Now().Format(time.RFC3339Nano), sig, p.cmd.ProcessState)
	p.log.Close()
}

// restart kills a component with sig and starts it again with the same
// flags, in the same host.
func (g *procGroup) restart(name string, sig os.Signal) (*proc, error) {
	p, err := g.kill(name, sig)
	if err != nil {
		return nil, err
	}
	return g.start(name, p.host, p.path, p.args...)
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail returns the last n lines of a component's log.
func (g *procGroup) logTail(name string, n int) string {
	data, _ := os.ReadFile(filepath.Join(g.dir, name+".log"))
	return tail(data, n)
}

// exited reports whether a component that should run has exited, and how.
func (g *procGroup) exited() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for name, p := range g.running {
		select {
		case <-p.done:
			out = append(out, fmt.Sprintf("%s exited: %v", name, p.cmd.ProcessState))
		default:
		}
	}
	sort.Strings(out)
	return out
}

// stopMatching ends the processes whose name match accepts (nil: all),
// each by its PID: SIGTERM, then SIGKILL after 10 s. They stop in parallel.
func (g *procGroup) stopMatching(match func(name string) bool) {
	g.mu.Lock()
	var ps []*proc
	for name, p := range g.running {
		if match == nil || match(name) {
			ps = append(ps, p)
			delete(g.running, name)
		}
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(syscall.SIGTERM, 10*time.Second) }()
	}
	wg.Wait()
}

func (g *procGroup) stopAll() { g.stopMatching(nil) }

// dumpLogs prints the tail of every component's log, and copies the whole
// logs to $E2E_ARTIFACTS/<test name>/ when that is set (CI keeps them).
func (g *procGroup) dumpLogs() {
	g.mu.Lock()
	names := append([]string(nil), g.logs...)
	g.mu.Unlock()
	artifacts := os.Getenv("E2E_ARTIFACTS")
	if artifacts != "" {
		artifacts = filepath.Join(artifacts, strings.ReplaceAll(g.t.Name(), "/", "_"))
		_ = os.MkdirAll(artifacts, 0o755)
	}
	for _, n := range names {
		data, _ := os.ReadFile(filepath.Join(g.dir, n+".log"))
		g.t.Logf("--- %s log (last 80 lines of %s) ---\n%s", n, filepath.Join(g.dir, n+".log"), tail(data, 80))
		if artifacts != "" {
			_ = os.WriteFile(filepath.Join(artifacts, n+".log"), data, 0o644)
		}
	}
	if artifacts != "" {
		g.t.Logf("full logs in %s", artifacts)
	}
}
