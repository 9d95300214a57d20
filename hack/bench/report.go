package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubeish/kubeish/hack/bench/scale/result"
)

// Report is the JSON the benchmark writes: every figure of one run.
type Report struct {
	Started     time.Time  `json:"started"`
	Seconds     float64    `json:"seconds"`
	Smoke       bool       `json:"smoke"`
	Machine     Machine    `json:"machine"`
	PartSeconds []PartTime `json:"partSeconds"`
	// API holds the raw etcd puts (op "etcd-put") and the API's figures.
	API       []APIFigure       `json:"api,omitempty"`
	Watch     *WatchFigure      `json:"watchFanout,omitempty"`
	Scheduler []SchedulerFigure `json:"scheduler,omitempty"`
	EndToEnd  *EndToEndFigure   `json:"endToEnd,omitempty"`
	Steady    *SteadyFigure     `json:"steadyState,omitempty"`
	Startup   *StartupFigure    `json:"podStartup,omitempty"`
	Targets   []Target          `json:"targets"`
	// Skipped and Failed name parts that did not run, with the reason.
	Skipped map[string]string `json:"skipped,omitempty"`
	Failed  map[string]string `json:"failed,omitempty"`
}

// Machine is what the run ran on.
type Machine struct {
	CPUs          int     `json:"cpus"`
	CPUModel      string  `json:"cpuModel"`
	MemoryGiB     float64 `json:"memoryGiB"`
	Kernel        string  `json:"kernel"`
	LoadAvgBefore string  `json:"loadavgBefore"`
	LoadAvgAfter  string  `json:"loadavgAfter"`
}

// PartTime is how long one part took, its setup included.
type PartTime struct {
	Part    string  `json:"part"`
	Seconds float64 `json:"seconds"`
}

// APIFigure is one operation at one concurrency.
type APIFigure struct {
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Requests  int     `json:"requests"`
	OpsPerSec float64 `json:"opsPerSecond"`
	P50Ms     float64 `json:"p50Ms"`
	P99Ms     float64 `json:"p99Ms"`
}

// WatchFigure is the fan-out of one pod creation to every watcher.
type WatchFigure struct {
	Watchers    int     `json:"watchers"`
	Writes      int     `json:"writes"`
	CreateP50Ms float64 `json:"createP50Ms"`
	FirstP50Ms  float64 `json:"firstWatcherP50Ms"`
	LastP50Ms   float64 `json:"lastWatcherP50Ms"`
	LastP99Ms   float64 `json:"lastWatcherP99Ms"`
}

// SchedulerFigure is one scheduler case, medians over its runs.
type SchedulerFigure struct {
	Nodes        int     `json:"nodes"`
	Pods         int     `json:"pods"`
	Runs         int     `json:"runs"`
	PodsPerSec   float64 `json:"podsPerSecond"`
	CPUSeconds   float64 `json:"schedulerCpuSeconds"`
	MaxRSSMiB    float64 `json:"schedulerMaxRssMiB"`
	WritesPerPod int     `json:"etcdWritesPerPod"`
	// EtcdLimit is the raw etcd put rate at 64 clients (the scheduler
	// binds up to 64 pods at once) divided by the writes per pod; Share
	// is PodsPerSec over it.
	EtcdLimit float64 `json:"etcdLimitPodsPerSecond,omitempty"`
	Share     float64 `json:"shareOfEtcdLimit,omitempty"`
}

// EndToEndFigure is a Deployment from create to every pod Running and
// Ready on hollow nodes.
type EndToEndFigure struct {
	Nodes         int     `json:"nodes"`
	NodesReadySec float64 `json:"nodesReadySeconds"`
	Replicas      int     `json:"replicas"`
	CreatedSec    float64 `json:"allCreatedSeconds"`
	ScheduledSec  float64 `json:"allScheduledSeconds"`
	ReadySec      float64 `json:"allReadySeconds"`
	PodsPerSec    float64 `json:"podsPerSecond"`
	StartupP50Sec float64 `json:"podStartupP50Seconds"`
	StartupP99Sec float64 `json:"podStartupP99Seconds"`
	// WritesPerPod are the apiserver's writes during the rollout per pod,
	// by resource[/subresource], the nodes' heartbeats left out.
	WritesPerPod map[string]float64 `json:"writesPerPod,omitempty"`
}

// SteadyFigure is every process's usage with the cluster at rest.
type SteadyFigure struct {
	Nodes                  int                     `json:"nodes"`
	Pods                   int                     `json:"pods"`
	ScaleUpPods            int                     `json:"scaleUpPods,omitempty"`
	ScaleUpSec             float64                 `json:"scaleUpSeconds,omitempty"`
	WindowSec              float64                 `json:"windowSeconds"`
	Processes              []result.ProcessUsage   `json:"processes"`
	ControlPlaneRSSMiB     float64                 `json:"controlPlaneRssMiB"`
	ControlPlaneCPUPercent float64                 `json:"controlPlaneCpuPercentOfOneCore"`
	PerHollowNode          result.ProcessUsageNode `json:"perHollowNode"`
}

// StartupFigure is real pod startup on one node.
type StartupFigure struct {
	Pods            int     `json:"pods"`
	P50Ms           float64 `json:"p50Ms"`
	P99Ms           float64 `json:"p99Ms"`
	AgentCPUSeconds float64 `json:"agentCpuSeconds"`
	AgentRSSMiB     float64 `json:"agentRssMiB"`
}

// Target is one of the targets and this run's figure for it.
type Target struct {
	Name   string  `json:"name"`
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
	// At says at what size it was measured when not the target's own
	// (smoke runs).
	At string `json:"at,omitempty"`
}

func sortScheduler(s []SchedulerFigure) {
	sort.Slice(s, func(i, j int) bool {
		return s[i].Nodes < s[j].Nodes || s[i].Nodes == s[j].Nodes && s[i].Pods < s[j].Pods
	})
}

func (r *Report) api(op string, clients int) (APIFigure, bool) {
	for _, f := range r.API {
		if f.Op == op && f.Clients == clients {
			return f, true
		}
	}
	return APIFigure{}, false
}

// computeTargets fills the scheduler's share of the etcd limit and the
// issue's targets from the figures measured.
func (r *Report) computeTargets() {
	if put, ok := r.api("etcd-put", 64); ok {
		for i := range r.Scheduler {
			s := &r.Scheduler[i]
			s.EtcdLimit = put.OpsPerSec / float64(s.WritesPerPod)
			s.Share = s.PodsPerSec / s.EtcdLimit
		}
	}
	r.Targets = nil
	add := func(t Target) { r.Targets = append(r.Targets, t) }
	if n := len(r.Scheduler); n > 0 {
		s := r.Scheduler[n-1] // the most nodes
		t := Target{Name: "scheduler at 5,000 nodes", Target: "≥ 1,000 pods/s", Value: s.PodsPerSec, Unit: "pods/s", Met: s.PodsPerSec >= 1000}
		if s.Nodes != 5000 {
			t.At = fmt.Sprintf("%d nodes", s.Nodes)
		}
		add(t)
	}
	if c, ok := r.api("create", 64); ok {
		u, _ := r.api("update", 64)
		p99 := max(c.P99Ms, u.P99Ms)
		add(Target{Name: "mutating API p99 at 64 clients (create, update)", Target: "≤ 50 ms", Value: p99, Unit: "ms", Met: p99 <= 50})
	}
	if e := r.EndToEnd; e != nil {
		t := Target{Name: "3,000 replicas Running and Ready", Target: "≤ 10 s", Value: e.ReadySec, Unit: "s", Met: e.ReadySec <= 10}
		if e.Replicas != 3000 || e.Nodes != 1000 {
			t.At = fmt.Sprintf("%d replicas on %d nodes", e.Replicas, e.Nodes)
		}
		add(t)
	}
	if s := r.Steady; s != nil {
		t := Target{Name: "control plane RSS at 1,000 nodes / 30,000 pods", Target: "≤ 500 MiB", Value: s.ControlPlaneRSSMiB, Unit: "MiB", Met: s.ControlPlaneRSSMiB <= 500}
		if s.Pods != 30000 || s.Nodes != 1000 {
			t.At = fmt.Sprintf("%d nodes / %d pods", s.Nodes, s.Pods)
		}
		add(t)
	}
	if s := r.Startup; s != nil {
		add(Target{Name: "real pod startup p99 (30 pods)", Target: "≤ 1 s", Value: s.P99Ms / 1000, Unit: "s", Met: s.P99Ms <= 1000})
	}
}

func printReport(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	m := r.Machine
	size := "full"
	if r.Smoke {
		size = "smoke sizes"
	}
	fmt.Fprintf(tw, "kubeish bench (%s), %s\t%d CPUs (%s), %.1f GiB, Linux %s, load %s → %s, %s\n",
		size, r.Started.Format("2006-01-02 15:04 UTC"), m.CPUs, m.CPUModel, m.MemoryGiB, m.Kernel, m.LoadAvgBefore, m.LoadAvgAfter,
		time.Duration(r.Seconds*float64(time.Second)).Round(time.Second))

	if len(r.API) > 0 {
		fmt.Fprintf(tw, "\t\t\t\n")
		fmt.Fprintf(tw, "API, pods (%d requests each): ops/s, p50 / p99 ms\tclients=1\tclients=16\tclients=64\n", r.API[0].Requests)
		for _, op := range []string{"etcd-put", "create", "get", "list", "update"} {
			label := map[string]string{"etcd-put": "raw etcd put (the limit)", "create": "create", "get": "get",
				"list": "list (100 pods, label selector)", "update": "update (PUT, resourceVersion)"}[op]
			cells := []string{label}
			for _, c := range []int{1, 16, 64} {
				f, ok := r.api(op, c)
				if !ok {
					cells = append(cells, "-")
					continue
				}
				cells = append(cells, fmt.Sprintf("%.0f/s, %.1f / %.1f", f.OpsPerSec, f.P50Ms, f.P99Ms))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	if wf := r.Watch; wf != nil {
		fmt.Fprintf(tw, "\t\t\t\n")
		fmt.Fprintf(tw, "watch fan-out: %d pod watchers, %d creates\twrite → last watcher p50 %.1f ms, p99 %.1f ms (→ first p50 %.1f ms; create p50 %.1f ms)\n",
			wf.Watchers, wf.Writes, wf.LastP50Ms, wf.LastP99Ms, wf.FirstP50Ms, wf.CreateP50Ms)
	}
	if len(r.Scheduler) > 0 {
		fmt.Fprintf(tw, "\t\t\t\n")
		for _, s := range r.Scheduler {
			share := ""
			if s.EtcdLimit > 0 {
				share = fmt.Sprintf(", %.0f %% of the etcd limit (%.0f puts/s at 64 clients, %d write per pod)", 100*s.Share, s.EtcdLimit*float64(s.WritesPerPod), s.WritesPerPod)
			}
			fmt.Fprintf(tw, "scheduler: %d pending pods on %d nodes (median of %d)\t%.0f pods/s%s; scheduler %.1f CPU-s, %.0f MiB\n",
				s.Pods, s.Nodes, s.Runs, s.PodsPerSec, share, s.CPUSeconds, s.MaxRSSMiB)
		}
	}
	if e := r.EndToEnd; e != nil {
		fmt.Fprintf(tw, "\t\t\t\n")
		fmt.Fprintf(tw, "end to end: Deployment of %d on %d hollow nodes\tall Running+Ready %.1f s (%.0f pods/s): created %.1f s, bound %.1f s; per pod p50 %.2f s, p99 %.2f s\n",
			e.Replicas, e.Nodes, e.ReadySec, e.PodsPerSec, e.CreatedSec, e.ScheduledSec, e.StartupP50Sec, e.StartupP99Sec)
		if len(e.WritesPerPod) > 0 {
			fmt.Fprintf(tw, "  API writes per pod during it\t%s\n", result.FormatWrites(e.WritesPerPod))
		}
	}
	if s := r.Steady; s != nil {
		fmt.Fprintf(tw, "\t\t\t\n")
		if s.ScaleUpPods > 0 {
			fmt.Fprintf(tw, "scale-up: +%d pods\tRunning+Ready in %.1f s\n", s.ScaleUpPods, s.ScaleUpSec)
		}
		fmt.Fprintf(tw, "steady state: %d hollow nodes, %d pods (%.0f s window)\tCPU %% of a core\tRSS MiB\tpeak RSS MiB\n", s.Nodes, s.Pods, s.WindowSec)
		for _, p := range s.Processes {
			name := p.Name
			switch name {
			case "apiserver":
				name = "apiserver (with embedded etcd)"
			case "hollow":
				name = "hollow-node process (all nodes)"
			}
			fmt.Fprintf(tw, "  %s\t%.1f\t%.0f\t%.0f\n", name, p.CPUPercent, p.RSSMiB, p.PeakRSSMiB)
		}
		fmt.Fprintf(tw, "  control plane (apiserver + controller + scheduler)\t%.1f\t%.0f\t\n", s.ControlPlaneCPUPercent, s.ControlPlaneRSSMiB)
		fmt.Fprintf(tw, "  hollow node, per node\t%.2f millicores\t%.0f KiB\t\n", s.PerHollowNode.CPUMillicores, s.PerHollowNode.RSSKiB)
	}
	if s := r.Startup; s != nil {
		fmt.Fprintf(tw, "\t\t\t\n")
		fmt.Fprintf(tw, "real containerd pod startup, %d pods on one node\tcreated → Running p50 %.0f ms, p99 %.0f ms; agent %.2f CPU-s, %.0f MiB\n",
			s.Pods, s.P50Ms, s.P99Ms, s.AgentCPUSeconds, s.AgentRSSMiB)
	}
	for _, p := range allParts {
		if why, ok := r.Skipped[p]; ok {
			fmt.Fprintf(tw, "%s: skipped\t%s\n", p, why)
		}
		if why, ok := r.Failed[p]; ok {
			fmt.Fprintf(tw, "%s: FAILED\t%s\n", p, why)
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintf(tw, "\t\t\t\n")
		fmt.Fprintf(tw, "target\tissue's\tthis run\tmet\n")
		for _, t := range r.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			if t.At != "" {
				met = "n/a: measured at " + t.At
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.4g %s\t%s\n", t.Name, t.Target, t.Value, t.Unit, met)
		}
	}
	var parts []string
	for _, p := range r.PartSeconds {
		parts = append(parts, fmt.Sprintf("%s %.0f s", p.Part, p.Seconds))
	}
	fmt.Fprintf(tw, "\t\t\t\n")
	fmt.Fprintf(tw, "time per part\t%s\n", strings.Join(parts, ", "))
	_ = tw.Flush()
}
