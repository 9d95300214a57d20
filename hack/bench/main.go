// Command bench is `make bench`: it runs every part of kubeish's benchmark
// one after another on this machine, each as its own process, and prints
// one table of their figures, also written as JSON to --out:
//
//   - api: raw etcd puts and pod create/get/list/update at 1, 16 and 64
//     clients (hack/bench/api, BenchmarkAPI);
//   - watch: one write's fan-out to 1,000 pod watchers (hack/bench/api,
//     BenchmarkWatchFanout);
//   - scheduler: 10,000 pending pods bound on 1,000 and on 5,000 nodes,
//     and that as a share of the etcd write limit (scheduler/bench);
//   - startup: real containerd pod startup, 30 pods on one node
//     (kubeletish BenchmarkPodStartup; root and containerd, else skipped
//     with the reason printed);
//   - scale: a Deployment of 3,000 on 1,000 hollow nodes, then the steady
//     state at 30,000 pods: RSS and CPU of every process (hack/bench/scale).
//
// --smoke runs the same parts at small sizes (CI; under 2 minutes).
// Figures are printed, never asserted: the exit code says only whether
// every part ran.
//
//	go run ./hack/bench --out bench.json
//	go run ./hack/bench --smoke --out bench.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/kubeish/kubeish/hack/bench/scale/result"
)

// allParts are the parts in the order they run: the short API figures
// first, on a quiet machine, the long scale run last.
var allParts = []string{"api", "watch", "scheduler", "startup", "scale"}

// sizes are one run's sample counts and cluster sizes.
type sizes struct {
	apiOps                     int    // requests per API figure
	watchers, watchWrites      int    // fan-out
	schedCases                 string // -bench pattern of scheduler/bench's cases
	schedLarge                 bool   // SCHED_BENCH_LARGE
	schedCount                 int    // runs per scheduler case (median reported)
	scaleArgs                  []string
	schedTimeout, scaleTimeout time.Duration
}

func fullSizes() sizes {
	return sizes{apiOps: 2000, watchers: 1000, watchWrites: 50,
		schedCases: "nodes=(1000|5000)/", schedLarge: true, schedCount: 3,
		scaleArgs:    []string{"--nodes", "1000", "--replicas", "3000", "--steady-replicas", "30000", "--settle", "10s", "--window", "30s"},
		schedTimeout: 20 * time.Minute, scaleTimeout: 15 * time.Minute}
}

func smokeSizes() sizes {
	return sizes{apiOps: 200, watchers: 1000, watchWrites: 10,
		schedCases: "nodes=100/", schedCount: 1,
		scaleArgs:    []string{"--smoke", "--settle", "2s", "--window", "5s"},
		schedTimeout: 5 * time.Minute, scaleTimeout: 5 * time.Minute}
}

type options struct {
	out, workDir string
	smoke, keep  bool
	parts        map[string]bool
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "bench.json", "JSON output file")
	flag.BoolVar(&o.smoke, "smoke", false, "small sizes (CI, under 2 minutes): 200 requests per API figure, 10 fan-out writes, 100 nodes / 1,000 pods for the scheduler, 50 hollow nodes / 300 replicas, no containerd part")
	parts := flag.String("parts", strings.Join(allParts, ","), "parts to run, comma-separated, of "+strings.Join(allParts, ","))
	flag.StringVar(&o.workDir, "work-dir", "", "folder for the parts' logs (default: a temporary one, removed at exit unless --keep or a part failed)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir")
	flag.Parse()
	o.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		p = strings.TrimSpace(p)
		if !contains(allParts, p) {
			fmt.Fprintf(os.Stderr, "bench: unknown part %q (parts: %s)\n", p, strings.Join(allParts, ","))
			os.Exit(2)
		}
		o.parts[p] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

// runner runs the parts' commands in the module root, each with its
// output in a log file of the work dir.
type runner struct {
	root, dir string
}

// run runs one command and returns its combined output's path; the error
// names the log when it fails.
func (r *runner) run(ctx context.Context, part string, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logPath := filepath.Join(r.dir, part+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s %s %s\n", strings.Join(env, " "), name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// SIGINT first at the deadline, so go test and the scale bench stop
	// the processes they started; killed 30 s later if still running.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return logPath, fmt.Errorf("%s: %w (log: %s)", part, err, logPath)
	}
	return logPath, nil
}

func run(ctx context.Context, o options) (err error) {
	sz := fullSizes()
	if o.smoke {
		sz = smokeSizes()
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("finding the module: %w", err)
	}
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kubeish-bench-"); err != nil {
			return err
		}
	}
	r := &runner{root: strings.TrimSpace(string(root)), dir: dir}

	rep := &Report{Started: time.Now().UTC(), Smoke: o.smoke, Machine: machine(), Skipped: map[string]string{}, Failed: map[string]string{}}
	start := time.Now()
	for _, p := range allParts {
		if !o.parts[p] {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if o.smoke && p == "startup" {
			rep.Skipped[p] = "not in --smoke (real containerd, 30 pods: run `make bench-kubeletish`)"
			logf("%s: skipped: %s", p, rep.Skipped[p])
			continue
		}
		logf("%s: running", p)
		t0 := time.Now()
		var skip string
		switch p {
		case "api":
			err = runAPI(ctx, r, sz, rep)
		case "watch":
			err = runWatch(ctx, r, sz, rep)
		case "scheduler":
			err = runScheduler(ctx, r, sz, rep)
		case "startup":
			skip, err = runStartup(ctx, r, rep)
		case "scale":
			err = runScale(ctx, r, sz, rep)
		}
		rep.PartSeconds = append(rep.PartSeconds, PartTime{Part: p, Seconds: time.Since(t0).Seconds()})
		switch {
		case err != nil:
			rep.Failed[p] = err.Error()
			logf("%s: FAILED after %s: %v", p, time.Since(t0).Round(time.Second), err)
			if path := logPathOf(r, p); path != "" {
				printTail(path, 30)
			}
		case skip != "":
			rep.Skipped[p] = skip
			logf("%s: skipped: %s", p, skip)
		default:
			logf("%s: done in %s", p, time.Since(t0).Round(time.Second))
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Machine.LoadAvgAfter = loadAvg()
	rep.computeTargets()

	printReport(os.Stdout, rep)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	logf("wrote %s", o.out)
	if len(rep.Failed) > 0 {
		logf("logs kept in %s", dir)
		return errors.New("some parts failed: " + strings.Join(keys(rep.Failed), ", "))
	}
	if !o.keep && o.workDir == "" {
		os.RemoveAll(dir)
	} else {
		logf("logs in %s", dir)
	}
	return nil
}

func keys(m map[string]string) []string {
	var k []string
	for _, p := range allParts {
		if _, ok := m[p]; ok {
			k = append(k, p)
		}
	}
	return k
}

func logPathOf(r *runner, part string) string {
	p := filepath.Join(r.dir, part+".log")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func printTail(path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintf(os.Stderr, "--- last lines of %s\n%s\n---\n", path, strings.Join(lines, "\n"))
}

// goTest runs `go test` of one package's benchmarks and parses the output.
func goTest(ctx context.Context, r *runner, part string, timeout time.Duration, env []string, pkg, pattern, benchtime string, count int) (benchResults, []string, error) {
	path, err := r.run(ctx, part, timeout, env, "go", "test", pkg, "-run", "^$", "-bench", pattern,
		"-benchtime", benchtime, "-count", fmt.Sprint(count), "-timeout", timeout.String())
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	res, skips := parseBench(f)
	return res, skips, nil
}

func runAPI(ctx context.Context, r *runner, sz sizes, rep *Report) error {
	res, _, err := goTest(ctx, r, "api", 10*time.Minute, nil, "./hack/bench/api", "^BenchmarkAPI$", fmt.Sprintf("%dx", sz.apiOps), 1)
	if err != nil {
		return err
	}
	for _, op := range []string{"etcd-put", "create", "get", "list", "update"} {
		for _, c := range []int{1, 16, 64} {
			name := fmt.Sprintf("BenchmarkAPI/%s/clients=%d", op, c)
			ops, ok := res.median(name, "ops/s")
			if !ok {
				return fmt.Errorf("api: no result for %s", name)
			}
			p50, _ := res.median(name, "p50-ms")
			p99, _ := res.median(name, "p99-ms")
			rep.API = append(rep.API, APIFigure{Op: op, Clients: c, Requests: sz.apiOps, OpsPerSec: ops, P50Ms: p50, P99Ms: p99})
		}
	}
	return nil
}

func runWatch(ctx context.Context, r *runner, sz sizes, rep *Report) error {
	env := []string{fmt.Sprintf("BENCH_API_WATCHERS=%d", sz.watchers), fmt.Sprintf("BENCH_API_WATCH_WRITES=%d", sz.watchWrites)}
	res, _, err := goTest(ctx, r, "watch", 5*time.Minute, env, "./hack/bench/api", "^BenchmarkWatchFanout$", "1x", 1)
	if err != nil {
		return err
	}
	const name = "BenchmarkWatchFanout"
	last50, ok := res.median(name, "last-p50-ms")
	if !ok {
		return errors.New("watch: no result")
	}
	w := &WatchFigure{Watchers: sz.watchers, Writes: sz.watchWrites, LastP50Ms: last50}
	w.LastP99Ms, _ = res.median(name, "last-p99-ms")
	w.FirstP50Ms, _ = res.median(name, "first-p50-ms")
	w.CreateP50Ms, _ = res.median(name, "create-p50-ms")
	rep.Watch = w
	return nil
}

func runScheduler(ctx context.Context, r *runner, sz sizes, rep *Report) error {
	var env []string
	if sz.schedLarge {
		env = append(env, "SCHED_BENCH_LARGE=1")
	}
	res, _, err := goTest(ctx, r, "scheduler", sz.schedTimeout, env, "./scheduler/bench", "^BenchmarkScheduling$/"+sz.schedCases, "1x", sz.schedCount)
	if err != nil {
		return err
	}
	for name := range res {
		var nodes, pods int
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, "BenchmarkScheduling/"), "nodes=%d/pods=%d", &nodes, &pods); err != nil {
			continue
		}
		s := SchedulerFigure{Nodes: nodes, Pods: pods, Runs: len(res[name]), WritesPerPod: 1}
		s.PodsPerSec, _ = res.median(name, "pods/s")
		s.CPUSeconds, _ = res.median(name, "sched-cpu-s")
		s.MaxRSSMiB, _ = res.median(name, "sched-maxrss-MiB")
		rep.Scheduler = append(rep.Scheduler, s)
	}
	if len(rep.Scheduler) == 0 {
		return errors.New("scheduler: no result")
	}
	sortScheduler(rep.Scheduler)
	return nil
}

// runStartup returns a reason when the benchmark skipped itself.
func runStartup(ctx context.Context, r *runner, rep *Report) (string, error) {
	if os.Geteuid() != 0 {
		return "needs root (real containerd, network namespaces, cgroups)", nil
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		return "containerd is not installed", nil
	}
	res, skips, err := goTest(ctx, r, "startup", 10*time.Minute, nil, "./kubeletish", "^BenchmarkPodStartup$", "1x", 1)
	if err != nil {
		return "", err
	}
	const name = "BenchmarkPodStartup"
	p50, ok := res.median(name, "p50-ms")
	if !ok {
		if len(skips) > 0 {
			return strings.Join(skips, "; "), nil
		}
		return "", errors.New("startup: no result")
	}
	s := &StartupFigure{Pods: 30, P50Ms: p50}
	s.P99Ms, _ = res.median(name, "p99-ms")
	s.AgentCPUSeconds, _ = res.median(name, "agent-cpu-s")
	s.AgentRSSMiB, _ = res.median(name, "agent-rss-MiB")
	rep.Startup = s
	return "", nil
}

func runScale(ctx context.Context, r *runner, sz sizes, rep *Report) error {
	out := filepath.Join(r.dir, "scale.json")
	args := append([]string{"run", "./hack/bench/scale", "--out", out}, sz.scaleArgs...)
	if _, err := r.run(ctx, "scale", sz.scaleTimeout, nil, "go", args...); err != nil {
		return err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	var s result.Result
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("scale: %s: %w", out, err)
	}
	rep.EndToEnd = &EndToEndFigure{Nodes: s.Nodes, NodesReadySec: s.NodesReadySec, Replicas: s.Rollout.Pods,
		CreatedSec: s.Rollout.CreatedSec, ScheduledSec: s.Rollout.ScheduledSec, ReadySec: s.Rollout.ReadySec,
		PodsPerSec: s.Rollout.PodsPerSec, StartupP50Sec: s.Rollout.StartupP50Sec, StartupP99Sec: s.Rollout.StartupP99Sec,
		WritesPerPod: s.Rollout.WritesPerPod}
	st := &SteadyFigure{Nodes: s.Nodes, Pods: s.SteadyPods, WindowSec: s.WindowSec, Processes: s.Processes, PerHollowNode: s.PerHollowNode}
	if s.ScaleUp != nil {
		st.ScaleUpPods, st.ScaleUpSec = s.ScaleUp.Pods, s.ScaleUp.ReadySec
	}
	for _, p := range s.Processes {
		if p.Name != "hollow" {
			st.ControlPlaneRSSMiB += p.RSSMiB
			st.ControlPlaneCPUPercent += p.CPUPercent
		}
	}
	rep.Steady = st
	return nil
}

func machine() Machine {
	m := Machine{CPUs: goruntime.NumCPU(), LoadAvgBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %f kB", &kb); err == nil {
				m.MemoryGiB = kb / (1 << 20)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
