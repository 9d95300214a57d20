package framework

import (
	"fmt"
	"sort"
	"strings"
)

// Code is the outcome of a filter.
type Code int

const (
	// Success: the node fits.
	Success Code = iota
	// Unschedulable: the node does not fit now but might after a cluster
	// change (a pod leaves, the node's labels change, …).
	Unschedulable
	// Error: the plugin could not decide (e.g. an unparsable selector).
	Error
)

// Status is a filter's verdict on one node. A nil *Status is success.
type Status struct {
	Code    Code
	Reasons []string
	// Plugin is the name of the plugin that rejected the node.
	Plugin string
}

// NewStatus returns a status with the given code and reasons.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{Code: code, Reasons: reasons}
}

// IsSuccess is true for a nil or Success status.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// Plugin is the common part of every plugin.
type Plugin interface {
	Name() string
}

// FilterPlugin decides whether a pod may run on a node. Filter must be a
// pure function of its arguments: it may not modify them, and it is called
// concurrently for different nodes.
type FilterPlugin interface {
	Plugin
	Filter(pod *PodInfo, node *NodeInfo) *Status
}

// MaxNodeScore is the highest score a ScorePlugin gives (after
// normalization).
const MaxNodeScore int64 = 100

// ScorePlugin ranks the feasible nodes for a pod. Score must be pure and
// safe to call concurrently for different nodes; it returns a value in
// [0, MaxNodeScore] unless the plugin also implements ScoreNormalizer.
type ScorePlugin interface {
	Plugin
	Score(pod *PodInfo, node *NodeInfo) int64
}

// ScoreNormalizer rescales one plugin's raw scores over all scored nodes
// into [0, MaxNodeScore] (e.g. relative to the highest raw score).
type ScoreNormalizer interface {
	NormalizeScore(pod *PodInfo, scores []int64)
}

// ClusterEvent is a kind of cluster change that may make an unschedulable
// pod schedulable.
type ClusterEvent int

// The cluster events the queue reacts to.
const (
	NodeAdd ClusterEvent = 1 << iota
	NodeAllocatableChange
	NodeLabelChange
	NodeTaintChange
	// NodeConditionChange covers Ready and spec.unschedulable.
	NodeConditionChange
	AssignedPodDelete
	// UnschedulableTimeout is the queue's own periodic safety net.
	UnschedulableTimeout
)

// String names the event (for logs and metric labels).
func (e ClusterEvent) String() string {
	names := []string{"NodeAdd", "NodeAllocatableChange", "NodeLabelChange", "NodeTaintChange", "NodeConditionChange", "AssignedPodDelete", "UnschedulableTimeout"}
	var out []string
	for i, n := range names {
		if e&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, "|")
}

// EnqueueExtensions is implemented by filters that can say which cluster
// events may turn their rejection into a fit; the queue moves a pod
// rejected only by such plugins back to active only on those events.
// A filter without it is assumed to be helped by any event.
type EnqueueExtensions interface {
	EventsToRegister() ClusterEvent
}

// NoNodeAvailableMsg starts every FitError message, as in Kubernetes.
const NoNodeAvailableMsg = "0/%v nodes are available"

// Diagnosis records why each rejected node was rejected.
type Diagnosis struct {
	NodeToStatus map[string]*Status
	// UnschedulablePlugins are the plugins that rejected at least one node.
	UnschedulablePlugins map[string]struct{}
}

// FitError says that no node fits a pod.
type FitError struct {
	Pod         *PodInfo
	NumAllNodes int
	Diagnosis   Diagnosis
}

// Error is Kubernetes' message: "0/3 nodes are available: 1 node(s) had
// untolerated taint {key: value}, 2 Insufficient cpu." — a histogram of
// reasons, each "count reason", sorted as strings.
func (f *FitError) Error() string {
	msg := fmt.Sprintf(NoNodeAvailableMsg+":", f.NumAllNodes)
	counts := map[string]int{}
	for _, st := range f.Diagnosis.NodeToStatus {
		for _, r := range st.Reasons {
			counts[r]++
		}
	}
	hist := make([]string, 0, len(counts))
	for r, n := range counts {
		hist = append(hist, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(hist)
	if len(hist) > 0 {
		msg += " " + strings.Join(hist, ", ") + "."
	}
	return msg
}
