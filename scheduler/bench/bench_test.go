package bench

// Run with
//
//	go test ./scheduler/bench -run '^$' -bench . -benchtime 1x -count 3
//
// SCHED_BENCH_LARGE=1 adds (1,000, 10,000) and (5,000, 10,000).
// SCHED_BENCH_PROFILE=DIR writes a CPU profile of the scheduler process
// (from /debug/pprof, SCHED_BENCH_PROFILE_SECONDS long, default 5) per run.
// SCHED_BENCH_ARGS adds scheduler flags (e.g. "--max-inflight-binds=128").
// SCHED_BENCH_TRACE=1 logs bound / in-flight / active counts while it runs.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
	f "github.com/kubeish/kubeish/scheduler/framework/fwtest"
)

var schedulerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sched-bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	schedulerBin = filepath.Join(dir, "scheduler")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", schedulerBin, "github.com/kubeish/kubeish/scheduler")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the scheduler:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func BenchmarkScheduling(b *testing.B) {
	cases := [][2]int{{100, 1000}}
	if os.Getenv("SCHED_BENCH_LARGE") != "" {
		cases = append(cases, [2]int{1000, 10000}, [2]int{5000, 10000})
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", c[0], c[1]), func(b *testing.B) {
			var r result
			for i := 0; i < b.N; i++ {
				r = runOnce(b, c[0], c[1])
			}
			b.ReportMetric(r.podsPerSec, "pods/s")
			b.ReportMetric(r.cpuSeconds, "sched-cpu-s")
			b.ReportMetric(r.maxRSSMiB, "sched-maxrss-MiB")
			b.ReportMetric(r.startup.Seconds(), "sync-s")
			b.ReportMetric(r.bind.Seconds(), "bind-all-s")
		})
	}
}

// TestSchedulerProcess runs the smallest case once as a test, so that `go
// test ./...` covers the binary, its flags and its endpoints.
func TestSchedulerProcess(t *testing.T) {
	r := runOnce(t, 20, 200)
	t.Logf("20 nodes, 200 pods: %.0f pods/s, %.2f cpu-s, %.0f MiB", r.podsPerSec, r.cpuSeconds, r.maxRSSMiB)
}

type result struct {
	podsPerSec, cpuSeconds, maxRSSMiB float64
	startup, bind                     time.Duration
}

func runOnce(tb testing.TB, nodes, pods int) result {
	env := testenv.Start(tb)
	cs := env.Client
	parallel(tb, nodes, func(i int) error { return createNode(cs, f.Node(fmt.Sprintf("node-%05d", i), "32", "128Gi", 110)) })
	parallel(tb, pods, func(i int) error {
		p := f.Pod(fmt.Sprintf("pod-%05d", i), "100m", "128Mi", f.Owner(fmt.Sprintf("rs-%d", i/100)))
		p.UID = ""
		_, err := cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
		return err
	})

	addr := freeAddr(tb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := []string{"--server", env.URL, "--leader-elect=false", "--bind-address", addr, "--kube-api-qps=-1", "--log-level=warn"}
	args = append(args, strings.Fields(os.Getenv("SCHED_BENCH_ARGS"))...)
	cmd := exec.CommandContext(ctx, schedulerBin, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	base := "http://" + addr
	poll.Until(tb, 60*time.Second, "scheduler ready", func() (bool, error) { return get(base+"/readyz") == "ok", nil })
	synced := time.Now()
	var prof sync.WaitGroup
	if dir := os.Getenv("SCHED_BENCH_PROFILE"); dir != "" {
		prof.Add(1)
		go func() {
			defer prof.Done()
			secs := os.Getenv("SCHED_BENCH_PROFILE_SECONDS")
			if secs == "" {
				secs = "5"
			}
			out := filepath.Join(dir, fmt.Sprintf("sched-%d-%d.pprof", nodes, pods))
			if err := download(base+"/debug/pprof/profile?seconds="+secs, out); err != nil {
				tb.Errorf("profile: %v", err)
			}
		}()
	}
	// Scraping costs the scheduler CPU (the process collector reads
	// /proc), so poll the counter gently.
	poll.UntilEvery(tb, 100*time.Millisecond, 10*time.Minute, "all pods bound", func() (bool, error) {
		page := get(base + "/metrics")
		n := scraped(page, `scheduler_schedule_attempts_total{result="scheduled"}`)
		if os.Getenv("SCHED_BENCH_TRACE") != "" {
			tb.Logf("%6.2fs bound %6.0f inflight %3.0f active %5.0f", time.Since(synced).Seconds(), n,
				scraped(page, "kubeish_scheduler_inflight_binds"), scraped(page, `scheduler_pending_pods{queue="active"}`))
		}
		return n >= float64(pods), fmt.Errorf("%.0f of %d bound", n, pods)
	})
	done := time.Now()
	cpu, rss := procUsage(tb, cmd.Process.Pid)
	prof.Wait()

	// Checked from the API: every pod is bound.
	list, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	bound := 0
	for _, p := range list.Items {
		if p.Spec.NodeName != "" {
			bound++
		}
	}
	if bound != pods {
		tb.Fatalf("%d of %d pods bound", bound, pods)
	}
	return result{
		podsPerSec: float64(pods) / done.Sub(synced).Seconds(),
		cpuSeconds: cpu, maxRSSMiB: rss,
		startup: synced.Sub(start), bind: done.Sub(synced),
	}
}

func createNode(cs kubernetes.Interface, n *v1.Node) error {
	ctx := context.Background()
	status := n.Status
	n.Status = v1.NodeStatus{}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status = status
	_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

// parallel runs fn(0..n-1) on 64 goroutines (the apiserver's sweet spot).
func parallel(tb testing.TB, n int, fn func(int) error) {
	tb.Helper()
	var next int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func download(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// scraped returns the value of one sample in a Prometheus text page.
func scraped(page, sample string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return -1
}

// procUsage returns the CPU seconds (user+system) and peak RSS (MiB) of a
// running process, from /proc.
func procUsage(tb testing.TB, pid int) (cpu, rssMiB float64) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const clkTck = 100 // USER_HZ on Linux
	cpu = (utime + stime) / clkTck
	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	sc := bufio.NewScanner(st)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			rssMiB = kb / 1024
		}
	}
	return cpu, rssMiB
}
