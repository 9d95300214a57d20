package deployment

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// status computes d's counts from its sets; conditions are carried over.
func (c *Controller) status(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) appsv1.DeploymentStatus {
	st := d.Status.DeepCopy()
	all := append([]*appsv1.ReplicaSet{newRS}, olds...)
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReplicas = 0, 0, 0, 0
	for _, rs := range all {
		if rs == nil {
			continue
		}
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(replicas(d)-st.AvailableReplicas, 0)
	st.ObservedGeneration = d.Generation
	if f := ReplicaFailure(newRS, olds); f != nil {
		setCondition(st, *f)
	} else {
		removeCondition(st, appsv1.DeploymentReplicaFailure)
	}
	return *st
}

// ReplicaFailure is the Deployment's ReplicaFailure condition: a set that
// cannot create or delete its pods (a rejected template, a terminating
// namespace) says so on the Deployment, the new set's failure first, as
// Kubernetes does. Nil when no set is failing.
func ReplicaFailure(newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, olds...) {
		if rs == nil {
			continue
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
				return &appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: c.Status,
					Reason: c.Reason, Message: c.Message, LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime}
			}
		}
	}
	return nil
}

func removeCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	st.Conditions = slices.DeleteFunc(st.Conditions, func(c appsv1.DeploymentCondition) bool { return c.Type == t })
}

func condition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition sets a condition, keeping lastTransitionTime when the
// status does not change and lastUpdateTime when nothing changes at all.
func setCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := condition(st, c.Type)
	if cur == nil {
		st.Conditions = append(st.Conditions, c)
		return
	}
	if cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
		return
	}
	if cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	*cur = c
}

// syncStatus writes d's status and conditions; progressed says this sync
// created, revived or resized a set. The duration is when to look again
// for a progress deadline.
func (c *Controller) syncStatus(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet, progressed bool) (time.Duration, error) {
	now := metav1.NewTime(c.cfg.Now())
	st := c.status(d, newRS, olds)
	cond := func(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
		return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
	}
	_, unavailable, err := (&rollout{d: d}).fenceposts()
	if err != nil {
		return 0, err
	}
	if st.AvailableReplicas >= replicas(d)-unavailable {
		setCondition(&st, cond(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinAvailable, "Deployment has minimum availability."))
	} else {
		setCondition(&st, cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinUnavailable, "Deployment does not have minimum availability."))
	}

	var requeue time.Duration
	rsName := ""
	if newRS != nil {
		rsName = newRS.Name
	}
	prog := condition(&st, appsv1.DeploymentProgressing)
	deadline := d.Spec.ProgressDeadlineSeconds
	switch {
	case d.Spec.Paused:
		if prog == nil || prog.Reason != ReasonPaused {
			setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused"))
		}
	case prog != nil && prog.Reason == ReasonPaused:
		setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed"))
	case deadline == nil:
	case newRS != nil && Complete(d, &st):
		setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable,
			fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName)))
	case progressed || prog == nil || Progressed(&d.Status, &st):
		reason := ReasonRSUpdated
		msg := fmt.Sprintf("ReplicaSet %q is progressing.", rsName)
		if prog != nil && prog.Reason == ReasonRSUpdated && prog.Message == msg {
			// Same condition, but progress: renew the deadline.
			prog.LastUpdateTime = now
		} else {
			setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, reason, msg))
		}
		requeue = time.Duration(*deadline)*time.Second + progressRequeueTolerance
	case prog.Reason == ReasonDeadlineExceeded, prog.Reason == ReasonNewRSAvailable:
		// Timed out already, or complete once: a later loss of pods does
		// not count against the deadline (as in Kubernetes).
	default:
		if left := prog.LastUpdateTime.Add(time.Duration(*deadline) * time.Second).Sub(now.Time); left > 0 {
			requeue = left + progressRequeueTolerance
		} else {
			setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonDeadlineExceeded,
				fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName)))
			c.cfg.Recorder.Eventf(d, corev1.EventTypeWarning, ReasonDeadlineExceeded, "Deployment %q has timed out progressing.", d.Name)
		}
	}
	if apiequality.Semantic.DeepEqual(st, d.Status) {
		return requeue, nil
	}
	cp := d.DeepCopy()
	cp.Status = st
	if _, err := c.cfg.Client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("updating status: %w", err)
	}
	return requeue, nil
}
