// Command scale is kubeish's end-to-end scale benchmark on hollow nodes.
// It builds the binaries once, starts the real apiserver (embedded etcd
// on free loopback ports), controller and scheduler as processes, and one
// `kubeletish hollow` process with --nodes hollow nodes, waits until every
// node is Ready, then measures:
//
//   - rollout: a Deployment of --replicas from create to every pod Running
//     and Ready (seen through a watch), and pods per second; with --count
//     above 1 the Deployment is deleted and made again, and the medians are
//     reported;
//   - scale-up (with --steady-replicas above --replicas): the same
//     Deployment scaled to --steady-replicas, to Running and Ready;
//   - steady state: CPU seconds and RSS of every process over --window
//     (from /proc/<pid>), and of the hollow process per node.
//
// It prints one table and writes the figures as JSON to --out. Nothing
// runs as root and nothing leaves loopback; every process it started is
// ended by its PID before it exits.
//
//	go run ./hack/bench/scale                     # 1,000 nodes, 3,000 replicas
//	go run ./hack/bench/scale --smoke             # 50 nodes, 300 replicas, for CI
package main

import (
	"bufio"
	"context"
	"encoding/json"

	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kubeish/kubeish/hack/bench/scale/result"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

type options struct {
	nodes, replicas, steadyReplicas, count int
	window, settle, timeout                time.Duration
	leaseInterval                          time.Duration
	qps                                    float64
	out, workDir                           string
	keep, profiling                        bool
	hold                                   time.Duration
}

func main() {
	var o options
	smoke := flag.Bool("smoke", false, "small sizes for CI: 50 nodes, 300 replicas, a 10 s window (under 2 minutes)")
	flag.IntVar(&o.nodes, "nodes", 1000, "hollow nodes")
	flag.IntVar(&o.replicas, "replicas", 3000, "replicas of the measured Deployment")
	flag.IntVar(&o.steadyReplicas, "steady-replicas", 0, "scale the Deployment to this many replicas before the steady-state window (0: --replicas)")
	flag.IntVar(&o.count, "count", 1, "rollouts to measure (the median is reported)")
	flag.DurationVar(&o.window, "window", 30*time.Second, "steady-state measurement window")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "time between the last pod Ready and the steady-state window")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "deadline of each wait (nodes Ready, a rollout, a deletion)")
	flag.Float64Var(&o.qps, "control-plane-qps", 0, "--kube-api-qps of the controller and scheduler, burst twice that (0: their defaults, 2,000; negative: unlimited)")
	flag.DurationVar(&o.leaseInterval, "lease-interval", 10*time.Second, "the hollow nodes' lease interval")
	flag.StringVar(&o.out, "out", envOr("BENCH_OUT", "bench-scale.json"), "JSON output file (default $BENCH_OUT or bench-scale.json)")
	flag.StringVar(&o.workDir, "work-dir", "", "folder for binaries, etcd data and logs (default: a temporary one, removed at exit unless --keep)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir (logs) at exit")
	flag.BoolVar(&o.profiling, "profiling", false, "start every component with --profiling (/debug/pprof on the apiserver's plain-HTTP port and on the others' metrics ports)")
	flag.DurationVar(&o.hold, "hold", 0, "after the steady-state window, keep the cluster running this long (to take profiles), then stop")
	flag.Parse()
	if *smoke {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		o.nodes, o.replicas = 50, 300
		if !set["window"] {
			o.window = 10 * time.Second
		}
		if !set["settle"] {
			o.settle = 5 * time.Second
		}
		if o.steadyReplicas > 0 && o.steadyReplicas < o.replicas {
			o.steadyReplicas = 0
		}
	}
	if o.steadyReplicas < o.replicas {
		o.steadyReplicas = o.replicas
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

func run(ctx context.Context, o options) (err error) {
	res := &result.Result{Started: time.Now().UTC(), CPUs: goruntime.NumCPU(), LoadAvgBefore: loadAvg(), Nodes: o.nodes, ControlQPS: o.qps}
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kubeish-bench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	defer func() {
		if err != nil {
			logf("logs in %s (pass --keep to keep them)", dir)
		}
	}()
	bin := filepath.Join(dir, "bin")
	logf("building binaries")
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("finding the module: %w", err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./apiserver", "./controller", "./scheduler", "./kubeletish")
	build.Dir = strings.TrimSpace(string(root))
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building: %w", err)
	}

	ps := &procs{dir: dir}
	defer ps.stopAll()
	port, err := freePort()
	if err != nil {
		return err
	}
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	// No metrics scraping: it would ask every hollow node for its stats
	// (they have none), which is not what is measured here.
	apiArgs := []string{"--data-dir", filepath.Join(dir, "etcd"), "--etcd-listen-client-url", "http://127.0.0.1:0", "--etcd-listen-peer-url", "http://127.0.0.1:0",
		"--metric-resolution", "0", "--shutdown-timeout", "1s", "--log-level", "warn"}
	apiFlags, err := flagsOf(filepath.Join(bin, "apiserver"))
	if err != nil {
		return err
	}
	apiArgs = append(apiArgs, apiServingArgs(apiFlags, port)...)
	if o.profiling {
		apiArgs = append(apiArgs, "--profiling")
	}
	api, err := ps.start("apiserver", filepath.Join(bin, "apiserver"), apiArgs...)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, ps, time.Minute, "apiserver /readyz", func(ctx context.Context) (bool, error) {
		resp, err := http.Get(apiURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return err
	}
	// 10.0.0.0/8 in /24s: room for 65,536 nodes (the default /16 holds
	// 256). The grace period is well above the hollow lease interval, as
	// Kubernetes' 40 s is above the kubelet's 10 s.
	var qps []string
	if o.qps != 0 {
		qps = []string{"--kube-api-qps", fmt.Sprint(o.qps), "--kube-api-burst", fmt.Sprint(int(max(2*o.qps, 200)))}
	}
	ctrlArgs := []string{"--server", apiURL, "--bind-address", "127.0.0.1:0",
		"--cluster-cidr", "10.0.0.0/8", "--node-cidr-mask-size", "24", "--node-monitor-grace-period", (6 * o.leaseInterval).String(),
		"--log-level", "warn"}
	schedArgs := []string{"--server", apiURL, "--bind-address", "127.0.0.1:0", "--log-level", "warn"}
	hollowArgs := []string{"hollow", "--server", apiURL, "--nodes", fmt.Sprint(o.nodes),
		"--name-prefix", "hollow-", "--lease-interval", o.leaseInterval.String(), "--root-dir", filepath.Join(dir, "hollow"), "--log-level", "warn"}
	if o.profiling {
		ctrlArgs, schedArgs, hollowArgs = append(ctrlArgs, "--profiling"), append(schedArgs, "--profiling"), append(hollowArgs, "--profiling")
	}
	ctrl, err := ps.start("controller", filepath.Join(bin, "controller"), append(ctrlArgs, qps...)...)
	if err != nil {
		return err
	}
	sched, err := ps.start("scheduler", filepath.Join(bin, "scheduler"), append(schedArgs, qps...)...)
	if err != nil {
		return err
	}
	start := time.Now()
	hollow, err := ps.start("hollow", filepath.Join(bin, "kubeletish"), hollowArgs...)
	if err != nil {
		return err
	}
	cfg := &rest.Config{Host: apiURL, QPS: -1, UserAgent: "kubeish-bench"}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	logf("waiting for %d hollow nodes to be Ready", o.nodes)
	if err := waitFor(ctx, ps, o.timeout, "hollow nodes Ready", func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubeish.io/hollow=true", ResourceVersion: "0"})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			if nodeReady(&n) {
				ready++
			}
		}
		return ready == o.nodes, nil
	}); err != nil {
		return err
	}
	res.NodesReadySec = time.Since(start).Seconds()
	logf("%d nodes Ready after %.1fs", o.nodes, res.NodesReadySec)

	const ns = "bench"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	tr := newTracker()
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(tr); err != nil {
		return err
	}
	ictx, icancel := context.WithCancel(ctx)
	defer func() { icancel(); factory.Shutdown() }()
	factory.Start(ictx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}

	var name string
	for i := 0; i < o.count; i++ {
		name = fmt.Sprintf("scale-%d", i)
		logf("rollout %d: Deployment %s, %d replicas", i+1, name, o.replicas)
		w0 := apiWrites(apiURL)
		r, err := rollout(ctx, ps, cs, tr, ns, name, o.replicas, o.timeout)
		if err != nil {
			return err
		}
		r.WritesPerPod = perPod(w0, apiWrites(apiURL), r.Pods)
		logf("rollout %d: all Running and Ready after %.1fs (%.0f pods/s)", i+1, r.ReadySec, r.PodsPerSec)
		if i < o.count-1 {
			if err := deleteDeployment(ctx, ps, cs, tr, ns, name, &r, o.timeout); err != nil {
				return err
			}
			logf("rollout %d: deleted in %.1fs", i+1, r.DeleteSec)
		}
		res.Rollouts = append(res.Rollouts, r)
	}
	res.Rollout = median(res.Rollouts)

	res.SteadyPods = o.replicas
	if o.steadyReplicas > o.replicas {
		logf("scaling %s to %d replicas", name, o.steadyReplicas)
		r, err := scaleUp(ctx, ps, cs, tr, ns, name, o.replicas, o.steadyReplicas, o.timeout)
		if err != nil {
			return err
		}
		res.ScaleUp, res.SteadyPods = &r, o.steadyReplicas
		logf("scale-up: %d more pods Running and Ready after %.1fs (%.0f pods/s)", r.Pods, r.ReadySec, r.PodsPerSec)
	}

	logf("steady state: settling %s, then measuring %s", o.settle, o.window)
	if err := pause(ctx, o.settle); err != nil {
		return err
	}
	named := []*proc{api, ctrl, sched, hollow}
	before := make([]usage, len(named))
	for i, p := range named {
		if before[i], err = readUsage(p.cmd.Process.Pid); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := pause(ctx, o.window); err != nil {
		return err
	}
	elapsed := time.Since(t0)
	res.WindowSec = elapsed.Seconds()
	if err := ps.exited(); err != nil {
		return err
	}
	for i, p := range named {
		after, err := readUsage(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		cpu := (after.CPU - before[i].CPU).Seconds()
		res.Processes = append(res.Processes, result.ProcessUsage{Name: p.name, CPUSec: cpu, CPUPercent: 100 * cpu / elapsed.Seconds(),
			RSSMiB: mib(after.RSS), PeakRSSMiB: mib(after.HWM)})
	}
	h := res.Processes[3]
	res.PerHollowNode = result.ProcessUsageNode{CPUMillicores: 1000 * h.CPUSec / elapsed.Seconds() / float64(o.nodes), RSSKiB: h.RSSMiB * 1024 / float64(o.nodes)}
	res.LoadAvgAfter = loadAvg()

	printTable(os.Stdout, res)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	logf("wrote %s", o.out)
	if o.hold > 0 {
		logf("holding the cluster for %s (apiserver %s, work dir %s)", o.hold, apiURL, dir)
		return pause(ctx, o.hold)
	}
	return nil
}

// writeSample is one apiserver_request_total sample of a successful write.
var writeSample = regexp.MustCompile(`^apiserver_request_total\{code="2\d\d",resource="([^"]*)",subresource="([^"]*)",verb="(POST|PUT|PATCH|DELETE)"\} (\S+)$`)

// apiWrites returns the apiserver's successful writes so far by
// resource[/subresource], from its /metrics (nil when it cannot be read).
func apiWrites(apiURL string) map[string]float64 {
	resp, err := http.Get(apiURL + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := writeSample.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[4], 64)
		k := m[1]
		if m[2] != "" {
			k += "/" + m[2]
		}
		out[k] += v
	}
	return out
}

// perPod returns the writes between two apiWrites readings divided by pods,
// leaving out the nodes' own (leases, nodes).
func perPod(before, after map[string]float64, pods int) map[string]float64 {
	if after == nil || pods == 0 {
		return nil
	}
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 && !strings.HasPrefix(k, "leases") && !strings.HasPrefix(k, "nodes") {
			out[k] = d / float64(pods)
		}
	}
	return out
}

// flagsOf returns the flags a binary's --help lists, so that the
// benchmark follows the apiserver's serving flags as they change.
func flagsOf(bin string) (map[string]bool, error) {
	out, _ := exec.Command(bin, "--help").CombinedOutput() // --help exits 0 or 2 depending on the flag library
	flags := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if name, ok := strings.CutPrefix(f, "--"); ok {
			name, _, _ = strings.Cut(name, "[")
			name, _, _ = strings.Cut(name, "=")
			flags[name] = true
		}
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("%s --help lists no flags", bin)
	}
	return flags, nil
}

// apiServingArgs are the apiserver's listen flags: with HTTPS and
// authentication (--insecure-listen-address exists) the benchmark's
// clients use the plain-HTTP loopback listener on port, HTTPS listens on
// a free port, the apiserver reaches the hollow nodes over plain HTTP, and
// one user may hold any number of watches (every client of the plain
// listener is the same user, where a real cluster has one per node);
// without it, --listen-address is the plain-HTTP API.
func apiServingArgs(flags map[string]bool, port int) []string {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if !flags["insecure-listen-address"] {
		return []string{"--listen-address", addr}
	}
	args := []string{"--listen-address", "127.0.0.1:0", "--insecure-listen-address", addr}
	if flags["kubelet-insecure-http"] {
		args = append(args, "--kubelet-insecure-http")
	}
	if flags["max-watches-per-user"] {
		args = append(args, "--max-watches-per-user", "0")
	}
	return args
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// pause waits out a measurement window (not a wait for a condition).
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitFor polls cond every 200 ms until it holds, failing at the deadline,
// when ctx ends or when a component exits.
func waitFor(ctx context.Context, ps *procs, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := ps.exited(); err != nil {
			return false, err
		}
		return cond(ctx)
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func podReady(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// tracker follows the benchmark namespace's pods through a watch: when
// each was first seen, first seen bound and first seen Running and Ready.
type tracker struct {
	mu   sync.Mutex
	pods map[string]*podTimes // by name
}

type podTimes struct {
	app                      string
	seen, scheduled, readyAt time.Time
}

func newTracker() *tracker { return &tracker{pods: map[string]*podTimes{}} }

func (t *tracker) observe(o any) {
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.pods[p.Name]
	if pt == nil {
		pt = &podTimes{app: p.Labels["app"], seen: now}
		t.pods[p.Name] = pt
	}
	if pt.scheduled.IsZero() && p.Spec.NodeName != "" {
		pt.scheduled = now
	}
	if pt.readyAt.IsZero() && podReady(p) {
		pt.readyAt = now
	}
}

func (t *tracker) OnAdd(o any, _ bool) { t.observe(o) }
func (t *tracker) OnUpdate(_, o any)   { t.observe(o) }
func (t *tracker) OnDelete(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if p, ok := o.(*v1.Pod); ok {
		t.mu.Lock()
		delete(t.pods, p.Name)
		t.mu.Unlock()
	}
}

// counts returns, for the app's pods: how many exist, are bound and are
// Ready, the latest times each of those was reached, and the pods' times
// from first seen to Ready.
func (t *tracker) counts(app string) (n, scheduled, ready int, lastSeen, lastSched, lastReady time.Time, startup []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, pt := range t.pods {
		if pt.app != app {
			continue
		}
		n++
		lastSeen = later(lastSeen, pt.seen)
		if !pt.scheduled.IsZero() {
			scheduled++
			lastSched = later(lastSched, pt.scheduled)
		}
		if !pt.readyAt.IsZero() {
			ready++
			lastReady = later(lastReady, pt.readyAt)
			startup = append(startup, pt.readyAt.Sub(pt.seen))
		}
	}
	return
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func deployment(ns, name string, replicas int) *appsv1.Deployment {
	r := int32(replicas)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &r, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "example.test/hollow:1"}}}}}}
}

// rollout creates the Deployment and waits until all its pods are Running
// and Ready.
func rollout(ctx context.Context, ps *procs, cs kubernetes.Interface, tr *tracker, ns, name string, replicas int, timeout time.Duration) (result.Rollout, error) {
	start := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, name, replicas), metav1.CreateOptions{}); err != nil {
		return result.Rollout{}, err
	}
	return waitRollout(ctx, ps, tr, name, start, replicas, replicas, timeout)
}

func waitRollout(ctx context.Context, ps *procs, tr *tracker, name string, start time.Time, want, added int, timeout time.Duration) (result.Rollout, error) {
	var r result.Rollout
	last := time.Now()
	err := waitFor(ctx, ps, timeout, fmt.Sprintf("%d pods of %s Running and Ready", want, name), func(context.Context) (bool, error) {
		n, sched, ready, lSeen, lSched, lReady, startup := tr.counts(name)
		if time.Since(last) > 5*time.Second {
			logf("  %s: %d pods, %d bound, %d Running and Ready", name, n, sched, ready)
			last = time.Now()
		}
		if ready < want || n != want {
			return false, nil
		}
		r = result.Rollout{Pods: added, CreatedSec: lSeen.Sub(start).Seconds(), ScheduledSec: lSched.Sub(start).Seconds(), ReadySec: lReady.Sub(start).Seconds()}
		r.PodsPerSec = float64(added) / r.ReadySec
		sort.Slice(startup, func(i, j int) bool { return startup[i] < startup[j] })
		r.StartupP50Sec, r.StartupP99Sec = quantile(startup, 0.5).Seconds(), quantile(startup, 0.99).Seconds()
		return true, nil
	})
	return r, err
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// scaleUp scales the Deployment from one size to another and waits until
// all its pods are Running and Ready; the figures are of the added pods
// (startup quantiles cover all of them, the earlier ones included).
func scaleUp(ctx context.Context, ps *procs, cs kubernetes.Interface, tr *tracker, ns, name string, from, to int, timeout time.Duration) (result.Rollout, error) {
	start := time.Now()
	sc, err := cs.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		return result.Rollout{}, err
	}
	sc.Spec.Replicas = int32(to)
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return result.Rollout{}, err
	}
	return waitRollout(ctx, ps, tr, name, start, to, to-from, timeout)
}

// deleteDeployment deletes it (its ReplicaSet and pods through garbage
// collection, the pods gracefully through their nodes) and waits until no
// pod of it is left.
func deleteDeployment(ctx context.Context, ps *procs, cs kubernetes.Interface, tr *tracker, ns, name string, r *result.Rollout, timeout time.Duration) error {
	start := time.Now()
	bg := metav1.DeletePropagationBackground
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	err := waitFor(ctx, ps, timeout, "pods of "+name+" deleted", func(context.Context) (bool, error) {
		n, _, _, _, _, _, _ := tr.counts(name)
		return n == 0, nil
	})
	r.DeleteSec = time.Since(start).Seconds()
	r.DeletePodsPerSc = float64(r.Pods) / r.DeleteSec
	return err
}

// median returns the median of each figure over the runs.
func median(rs []result.Rollout) result.Rollout {
	if len(rs) == 0 {
		return result.Rollout{}
	}
	pick := func(f func(result.Rollout) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return result.Rollout{Pods: rs[0].Pods, WritesPerPod: rs[0].WritesPerPod,
		CreatedSec:      pick(func(r result.Rollout) float64 { return r.CreatedSec }),
		ScheduledSec:    pick(func(r result.Rollout) float64 { return r.ScheduledSec }),
		ReadySec:        pick(func(r result.Rollout) float64 { return r.ReadySec }),
		PodsPerSec:      pick(func(r result.Rollout) float64 { return r.PodsPerSec }),
		StartupP50Sec:   pick(func(r result.Rollout) float64 { return r.StartupP50Sec }),
		StartupP99Sec:   pick(func(r result.Rollout) float64 { return r.StartupP99Sec }),
		DeleteSec:       pick(func(r result.Rollout) float64 { return r.DeleteSec }),
		DeletePodsPerSc: pick(func(r result.Rollout) float64 { return r.DeletePodsPerSc }),
	}
}

func printTable(w *os.File, r *result.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "kubeish scale benchmark\t%d CPUs, load %s → %s\n", r.CPUs, r.LoadAvgBefore, r.LoadAvgAfter)
	qps := "defaults"
	if r.ControlQPS != 0 {
		qps = fmt.Sprint(r.ControlQPS)
	}
	fmt.Fprintf(tw, "hollow nodes Ready\t%d in %.1f s (controller/scheduler client QPS: %s)\n", r.Nodes, r.NodesReadySec, qps)
	ro := r.Rollout
	fmt.Fprintf(tw, "rollout: %d replicas (median of %d)\tcreated %.1f s, bound %.1f s, Running+Ready %.1f s: %.0f pods/s; per pod seen→Ready p50 %.2f s, p99 %.2f s\n",
		ro.Pods, len(r.Rollouts), ro.CreatedSec, ro.ScheduledSec, ro.ReadySec, ro.PodsPerSec, ro.StartupP50Sec, ro.StartupP99Sec)
	if len(ro.WritesPerPod) > 0 {
		fmt.Fprintf(tw, "API writes per pod during the rollout\t%s\n", result.FormatWrites(ro.WritesPerPod))
	}
	if ro.DeleteSec > 0 {
		fmt.Fprintf(tw, "delete: %d pods\t%.1f s: %.0f pods/s\n", ro.Pods, ro.DeleteSec, ro.DeletePodsPerSc)
	}
	if s := r.ScaleUp; s != nil {
		fmt.Fprintf(tw, "scale-up: +%d replicas\tbound %.1f s, Running+Ready %.1f s: %.0f pods/s\n", s.Pods, s.ScheduledSec, s.ReadySec, s.PodsPerSec)
	}
	fmt.Fprintf(tw, "steady state: %d nodes, %d pods, %.0f s window\tCPU s\tCPU %% of a core\tRSS MiB\tpeak RSS MiB\n", r.Nodes, r.SteadyPods, r.WindowSec)
	var cpu, rss float64
	for _, p := range r.Processes {
		name := p.Name
		if name == "apiserver" {
			name = "apiserver (with embedded etcd)"
		}
		fmt.Fprintf(tw, "  %s\t%.2f\t%.1f\t%.0f\t%.0f\n", name, p.CPUSec, p.CPUPercent, p.RSSMiB, p.PeakRSSMiB)
		if p.Name != "hollow" {
			cpu, rss = cpu+p.CPUSec, rss+p.RSSMiB
		}
	}
	fmt.Fprintf(tw, "  control plane total\t%.2f\t%.1f\t%.0f\t\n", cpu, 100*cpu/r.WindowSec, rss)
	fmt.Fprintf(tw, "  hollow, per node\t\t%.2f millicores\t%.0f KiB\t\n", r.PerHollowNode.CPUMillicores, r.PerHollowNode.RSSKiB)
	_ = tw.Flush()
}
