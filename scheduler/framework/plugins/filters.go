// Package plugins holds the scheduler's filter and score plugins, named as
// Kubernetes names them, and the default set with its weights.
package plugins

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/kubeish/kubeish/scheduler/framework"
)

// Plugin names.
const (
	NodeReadyName          = "NodeReady"
	NodeUnschedulableName  = "NodeUnschedulable"
	TaintTolerationName    = "TaintToleration"
	NodeAffinityName       = "NodeAffinity"
	NodePortsName          = "NodePorts"
	NodeResourcesFitName   = "NodeResourcesFit"
	LeastAllocatedName     = "NodeResourcesLeastAllocated"
	BalancedAllocationName = "NodeResourcesBalancedAllocation"
	SelectorSpreadName     = "SelectorSpread"
)

// Failure reasons, worded as Kubernetes words them (they end up in the
// PodScheduled condition's message).
const (
	ErrReasonNotReady          = "node(s) were not ready"
	ErrReasonUnschedulable     = "node(s) were unschedulable"
	ErrReasonAffinity          = "node(s) didn't match Pod's node affinity/selector"
	ErrReasonPorts             = "node(s) didn't have free ports for the requested pod ports"
	ErrReasonTooManyPods       = "Too many pods"
	ErrReasonUntoleratedFormat = "node(s) had untolerated taint {%s: %s}"
)

// nopLogger satisfies the klog.Logger argument of the toleration helpers.
var nopLogger = klog.Background().V(10)

func tolerates(tols []v1.Toleration, taint *v1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(nopLogger, taint, false) {
			return true
		}
	}
	return false
}

// NodeReady rejects nodes whose Ready condition is not True, unless the pod
// tolerates the not-ready taint (as DaemonSet-like pods do).
type NodeReady struct{}

func (NodeReady) Name() string { return NodeReadyName }

// EventsToRegister: a node becoming ready.
func (NodeReady) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeConditionChange
}

// Filter implements framework.FilterPlugin.
func (NodeReady) Filter(pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if node.Ready {
		return nil
	}
	if tolerates(pod.Pod.Spec.Tolerations, &v1.Taint{Key: v1.TaintNodeNotReady, Effect: v1.TaintEffectNoSchedule}) {
		return nil
	}
	return framework.NewStatus(framework.Unschedulable, ErrReasonNotReady)
}

// NodeUnschedulable rejects cordoned nodes (spec.unschedulable) unless the
// pod tolerates node.kubernetes.io/unschedulable:NoSchedule.
type NodeUnschedulable struct{}

func (NodeUnschedulable) Name() string { return NodeUnschedulableName }

// EventsToRegister: a node being uncordoned.
func (NodeUnschedulable) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeConditionChange
}

// Filter implements framework.FilterPlugin.
func (NodeUnschedulable) Filter(pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if !node.Unschedulable {
		return nil
	}
	if tolerates(pod.Pod.Spec.Tolerations, &v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}) {
		return nil
	}
	return framework.NewStatus(framework.Unschedulable, ErrReasonUnschedulable)
}

// TaintToleration rejects nodes with a NoSchedule or NoExecute taint the
// pod does not tolerate.
type TaintToleration struct{}

func (TaintToleration) Name() string { return TaintTolerationName }

// EventsToRegister: taints being removed.
func (TaintToleration) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeTaintChange
}

// Filter implements framework.FilterPlugin.
func (TaintToleration) Filter(pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	taints := node.Node.Spec.Taints
	for i := range taints {
		t := &taints[i]
		if t.Effect != v1.TaintEffectNoSchedule && t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		if !tolerates(pod.Pod.Spec.Tolerations, t) {
			return framework.NewStatus(framework.Unschedulable, fmt.Sprintf(ErrReasonUntoleratedFormat, t.Key, t.Value))
		}
	}
	return nil
}

// Score counts the PreferNoSchedule taints the pod does not tolerate;
// NormalizeScore turns fewer into better.
func (TaintToleration) Score(pod *framework.PodInfo, node *framework.NodeInfo) int64 {
	var n int64
	taints := node.Node.Spec.Taints
	for i := range taints {
		t := &taints[i]
		if t.Effect != v1.TaintEffectPreferNoSchedule {
			continue
		}
		tolerated := false
		for j := range pod.Pod.Spec.Tolerations {
			tol := &pod.Pod.Spec.Tolerations[j]
			if (tol.Effect == "" || tol.Effect == v1.TaintEffectPreferNoSchedule) && tol.ToleratesTaint(nopLogger, t, false) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			n++
		}
	}
	return n
}

// NormalizeScore implements framework.ScoreNormalizer (reversed: the node
// with the most intolerable taints scores 0).
func (TaintToleration) NormalizeScore(_ *framework.PodInfo, scores []int64) {
	defaultNormalize(scores, true)
}

// NodeAffinity rejects nodes that do not match spec.nodeSelector and the
// required node affinity terms, and scores the preferred terms.
type NodeAffinity struct{}

func (NodeAffinity) Name() string { return NodeAffinityName }

// EventsToRegister: node labels changing.
func (NodeAffinity) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeLabelChange
}

// Filter implements framework.FilterPlugin.
func (NodeAffinity) Filter(pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if pod.ParseErr != nil {
		return framework.NewStatus(framework.Error, pod.ParseErr.Error())
	}
	ok, err := pod.RequiredAffinity.Match(node.Node)
	if err != nil {
		return framework.NewStatus(framework.Error, err.Error())
	}
	if !ok {
		return framework.NewStatus(framework.Unschedulable, ErrReasonAffinity)
	}
	return nil
}

// Score sums the weights of the preferred terms the node matches.
func (NodeAffinity) Score(pod *framework.PodInfo, node *framework.NodeInfo) int64 {
	if pod.PreferredAffinity == nil {
		return 0
	}
	return pod.PreferredAffinity.Score(node.Node)
}

// NormalizeScore implements framework.ScoreNormalizer.
func (NodeAffinity) NormalizeScore(_ *framework.PodInfo, scores []int64) {
	defaultNormalize(scores, false)
}

// NodePorts rejects nodes where a host port the pod asks for is taken.
type NodePorts struct{}

func (NodePorts) Name() string { return NodePortsName }

// EventsToRegister: a pod leaving frees its ports.
func (NodePorts) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.AssignedPodDelete
}

// Filter implements framework.FilterPlugin.
func (NodePorts) Filter(pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	for _, want := range pod.HostPorts {
		for _, used := range node.UsedPorts {
			if want.Conflicts(used) {
				return framework.NewStatus(framework.Unschedulable, ErrReasonPorts)
			}
		}
	}
	return nil
}

// NodeResourcesFit rejects nodes whose allocatable cannot hold the pod's
// requests on top of the requests of the pods already there (bound or
// assumed), and nodes already running as many pods as they allow.
type NodeResourcesFit struct{}

func (NodeResourcesFit) Name() string { return NodeResourcesFitName }

// EventsToRegister: pods leaving, nodes growing.
func (NodeResourcesFit) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeAllocatableChange | framework.AssignedPodDelete
}

// Filter implements framework.FilterPlugin. Like Kubernetes it reports
// every insufficient resource, not just the first.
func (NodeResourcesFit) Filter(pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	var reasons []string
	if int64(len(node.Pods))+1 > node.Allocatable.AllowedPodNumber {
		reasons = append(reasons, ErrReasonTooManyPods)
	}
	req, alloc, used := pod.Requests, node.Allocatable, node.Requested
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	for name, q := range req.Scalar {
		if q > 0 && q > alloc.Scalar[name]-used.Scalar[name] {
			reasons = append(reasons, "Insufficient "+string(name))
		}
	}
	if len(reasons) > 0 {
		return framework.NewStatus(framework.Unschedulable, reasons...)
	}
	return nil
}

// defaultNormalize scales scores so the highest becomes MaxNodeScore
// (reversed: the highest becomes 0), as Kubernetes' DefaultNormalizeScore.
func defaultNormalize(scores []int64, reverse bool) {
	var max int64
	for _, s := range scores {
		if s > max {
			max = s
		}
	}
	if max == 0 {
		if reverse {
			for i := range scores {
				scores[i] = framework.MaxNodeScore
			}
		}
		return
	}
	for i, s := range scores {
		s = framework.MaxNodeScore * s / max
		if reverse {
			s = framework.MaxNodeScore - s
		}
		scores[i] = s
	}
}
