// Package pods holds the predicates on pod state that several loops share:
// which pods count as active, ready and available.
package pods

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// IsActive reports whether p still counts toward its owner's replicas: not
// finished and not being deleted.
func IsActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// ReadyCondition returns p's Ready condition, or nil.
func ReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsReady reports whether p's Ready condition is True.
func IsReady(p *corev1.Pod) bool {
	c := ReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsAvailable reports whether p has been ready for at least minReady at
// now. The second result, when p is ready but not yet available, is how
// long until it will be.
func IsAvailable(p *corev1.Pod, minReady time.Duration, now time.Time) (bool, time.Duration) {
	c := ReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, 0
	}
	if minReady <= 0 {
		return true, 0
	}
	since := c.LastTransitionTime.Time
	if since.IsZero() || !since.Add(minReady).After(now) {
		return true, 0
	}
	return false, since.Add(minReady).Sub(now)
}
