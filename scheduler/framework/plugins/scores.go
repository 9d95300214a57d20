package plugins

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubeish/kubeish/scheduler/framework"
)

// LeastAllocated prefers nodes with more free cpu and memory after placing
// the pod: for each resource (allocatable - requested) * 100 /
// allocatable, averaged. Requests count the non-zero defaults, so pods that
// ask for nothing still spread.
type LeastAllocated struct{}

func (LeastAllocated) Name() string { return LeastAllocatedName }

// Score implements framework.ScorePlugin.
func (LeastAllocated) Score(pod *framework.PodInfo, node *framework.NodeInfo) int64 {
	cpu := leastScore(node.NonZeroRequested.MilliCPU+pod.NonZeroRequests.MilliCPU, node.Allocatable.MilliCPU)
	mem := leastScore(node.NonZeroRequested.Memory+pod.NonZeroRequests.Memory, node.Allocatable.Memory)
	return (cpu + mem) / 2
}

func leastScore(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * framework.MaxNodeScore / capacity
}

// BalancedAllocation prefers nodes whose cpu and memory would be used in
// equal shares after placing the pod: (1 - stddev of the two fractions) *
// 100, as Kubernetes computes it. It uses the real requests.
type BalancedAllocation struct{}

func (BalancedAllocation) Name() string { return BalancedAllocationName }

// Score implements framework.ScorePlugin.
func (BalancedAllocation) Score(pod *framework.PodInfo, node *framework.NodeInfo) int64 {
	cpu := fraction(node.Requested.MilliCPU+pod.Requests.MilliCPU, node.Allocatable.MilliCPU)
	mem := fraction(node.Requested.Memory+pod.Requests.Memory, node.Allocatable.Memory)
	d := cpu - mem
	if d < 0 {
		d = -d
	}
	// The standard deviation of two values is half their distance.
	return int64((1 - d/2) * float64(framework.MaxNodeScore))
}

func fraction(requested, capacity int64) float64 {
	if capacity <= 0 {
		return 0
	}
	f := float64(requested) / float64(capacity)
	if f > 1 {
		return 1
	}
	return f
}

// SelectorSpread spreads the pods of one controller (a ReplicaSet, …)
// over the nodes: the raw score is how many of the controller's pods a node
// already has, and NormalizeScore gives the emptiest node 100 and the
// fullest 0. It looks only at counts the NodeInfo keeps, so its cost per
// node is O(1), not O(pods).
type SelectorSpread struct{}

func (SelectorSpread) Name() string { return SelectorSpreadName }

// Score implements framework.ScorePlugin.
func (SelectorSpread) Score(pod *framework.PodInfo, node *framework.NodeInfo) int64 {
	if pod.OwnerUID == "" {
		return 0
	}
	return int64(node.OwnerCounts[pod.OwnerUID])
}

// NormalizeScore implements framework.ScoreNormalizer.
func (SelectorSpread) NormalizeScore(_ *framework.PodInfo, scores []int64) {
	defaultNormalize(scores, true)
}

// DefaultFilters returns the filters in the order they run.
func DefaultFilters() []framework.FilterPlugin {
	return []framework.FilterPlugin{
		NodeReady{}, NodeUnschedulable{}, TaintToleration{}, NodeAffinity{}, NodePorts{}, NodeResourcesFit{},
	}
}

// Score plugin names as the --score-weights flag spells them.
const (
	WeightNodeAffinity    = "NodeAffinity"
	WeightTaintToleration = "TaintToleration"
)

// DefaultWeights are the default score weights, Kubernetes' where it has
// the plugin (SelectorSpread takes PodTopologySpread's 2).
func DefaultWeights() map[string]int64 {
	return map[string]int64{
		LeastAllocatedName:     1,
		BalancedAllocationName: 1,
		SelectorSpreadName:     2,
		WeightNodeAffinity:     2,
		WeightTaintToleration:  3,
	}
}

// Scores returns the score plugins with weights (missing names take
// their default; weight 0 disables a plugin). Unknown names are an error.
func Scores(weights map[string]int64) ([]framework.WeightedScorePlugin, error) {
	all := map[string]framework.ScorePlugin{
		LeastAllocatedName:     LeastAllocated{},
		BalancedAllocationName: BalancedAllocation{},
		SelectorSpreadName:     SelectorSpread{},
		WeightNodeAffinity:     NodeAffinity{},
		WeightTaintToleration:  TaintToleration{},
	}
	var unknown []string
	for name := range weights {
		if _, ok := all[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		known := make([]string, 0, len(all))
		for n := range all {
			known = append(known, n)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown score plugin(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	def := DefaultWeights()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []framework.WeightedScorePlugin
	for _, n := range names {
		w, ok := weights[n]
		if !ok {
			w = def[n]
		}
		if w < 0 {
			return nil, fmt.Errorf("score plugin %s: weight %d is negative", n, w)
		}
		if w == 0 {
			continue
		}
		out = append(out, framework.WeightedScorePlugin{ScorePlugin: all[n], Weight: w})
	}
	return out, nil
}
