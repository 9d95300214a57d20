package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The NoExecute taints the loop keeps in step with the Ready condition.
var (
	UnreachableTaint = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	NotReadyTaint    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
)

// Plan is what one check of a node decides.
type Plan struct {
	// MarkUnknown: the node stopped reporting; set its conditions Unknown.
	MarkUnknown bool
	// Taint is the NoExecute taint the node should carry (Key empty: none
	// of ours).
	Taint corev1.Taint
	// PodsNotReady: mark the node's pods not ready (nobody else will).
	PodsNotReady bool
	// Evict: force-delete the node's pods now.
	Evict bool
	// Wait is when to look again, for a pending eviction.
	Wait time.Duration
}

// readyCondition returns n's Ready condition, or nil.
func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// Decide plans for node n at now, given when its agent was last heard
// from (a lease renewal or status post seen by this process).
func Decide(n *corev1.Node, lastHeard, now time.Time, grace, eviction time.Duration) Plan {
	var p Plan
	ready := readyCondition(n)
	if ready == nil {
		// Never reported: Unknown only once the grace period is over.
		if now.Sub(lastHeard) <= grace {
			return p
		}
		return Plan{MarkUnknown: true, Taint: UnreachableTaint, PodsNotReady: true, Wait: eviction}
	}
	status, since := ready.Status, ready.LastTransitionTime.Time
	if now.Sub(lastHeard) > grace && status != corev1.ConditionUnknown {
		p.MarkUnknown = true
		status, since = corev1.ConditionUnknown, now
	}
	switch status {
	case corev1.ConditionTrue:
		return p
	case corev1.ConditionFalse:
		p.Taint = NotReadyTaint
	default:
		p.Taint = UnreachableTaint
		p.PodsNotReady = true
	}
	if left := since.Add(eviction).Sub(now); left > 0 {
		p.Wait = left
	} else {
		p.Evict = true
	}
	return p
}

// Tolerates reports whether pod p stays on a node with taint t for ever
// (a matching NoExecute toleration without tolerationSeconds), and
// otherwise how long it tolerates it (0: not at all).
func Tolerates(p *corev1.Pod, t corev1.Taint) (forever bool, for_ time.Duration) {
	for _, tol := range p.Spec.Tolerations {
		if !toleratesTaint(tol, t) {
			continue
		}
		if tol.TolerationSeconds == nil {
			return true, 0
		}
		for_ = max(for_, time.Duration(*tol.TolerationSeconds)*time.Second)
	}
	return false, for_
}

func toleratesTaint(tol corev1.Toleration, t corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpEqual, "":
		return tol.Key != "" && tol.Value == t.Value
	}
	return false
}
