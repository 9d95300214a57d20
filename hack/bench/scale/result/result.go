// Package result is the JSON hack/bench/scale writes and hack/bench reads,
// and how both print it.
package result

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Result is the JSON the benchmark writes.
type Result struct {
	Started       time.Time        `json:"started"`
	CPUs          int              `json:"cpus"`
	LoadAvgBefore string           `json:"loadavgBefore"`
	LoadAvgAfter  string           `json:"loadavgAfter"`
	Nodes         int              `json:"nodes"`
	ControlQPS    float64          `json:"controlPlaneQPS"`
	NodesReadySec float64          `json:"nodesReadySeconds"`
	Rollouts      []Rollout        `json:"rollouts"`
	Rollout       Rollout          `json:"rolloutMedian"`
	ScaleUp       *Rollout         `json:"scaleUp,omitempty"`
	SteadyPods    int              `json:"steadyPods"`
	WindowSec     float64          `json:"windowSeconds"`
	Processes     []ProcessUsage   `json:"processes"`
	PerHollowNode ProcessUsageNode `json:"perHollowNode"`
}

// Rollout is one Deployment's way to all pods Running and Ready.
type Rollout struct {
	Pods            int     `json:"pods"`
	CreatedSec      float64 `json:"allCreatedSeconds"`
	ScheduledSec    float64 `json:"allScheduledSeconds"`
	ReadySec        float64 `json:"allReadySeconds"`
	PodsPerSec      float64 `json:"podsPerSecond"`
	StartupP50Sec   float64 `json:"startupP50Seconds"`
	StartupP99Sec   float64 `json:"startupP99Seconds"`
	DeleteSec       float64 `json:"deleteSeconds,omitempty"`
	DeletePodsPerSc float64 `json:"deletePodsPerSecond,omitempty"`
	// WritesPerPod are the apiserver's successful writes during the
	// rollout per pod, by resource[/subresource] (pods, pods/binding,
	// pods/status, events, …; not the nodes' heartbeats).
	WritesPerPod map[string]float64 `json:"writesPerPod,omitempty"`
}

// ProcessUsage is one process over the steady-state window.
type ProcessUsage struct {
	Name       string  `json:"name"`
	CPUSec     float64 `json:"cpuSeconds"`
	CPUPercent float64 `json:"cpuPercentOfOneCore"`
	RSSMiB     float64 `json:"rssMiB"`
	PeakRSSMiB float64 `json:"peakRssMiB"`
}

// ProcessUsageNode is the hollow process's usage divided by its nodes.
type ProcessUsageNode struct {
	CPUMillicores float64 `json:"cpuMillicores"`
	RSSKiB        float64 `json:"rssKiB"`
}

// FormatWrites prints writes per pod, total first, then by resource, most
// first.
func FormatWrites(w map[string]float64) string {
	keys := make([]string, 0, len(w))
	total := 0.0
	for k, v := range w {
		keys = append(keys, k)
		total += v
	}
	sort.Slice(keys, func(i, j int) bool { return w[keys[i]] > w[keys[j]] || w[keys[i]] == w[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, w[k])
	}
	return fmt.Sprintf("%.2f (%s)", total, strings.Join(parts, ", "))
}
