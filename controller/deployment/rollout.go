package deployment

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// rollout is one sync of one Deployment: its owned ReplicaSets and what
// this sync has done so far (for the Progressing condition).
type rollout struct {
	c   *Controller
	d   *appsv1.Deployment
	all []*appsv1.ReplicaSet
	// createdRS or foundRS: this sync made or revived the new set.
	createdRS, foundRS bool
}

// equalIgnoreHash compares pod templates without the pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	delete(b.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	return apiequality.Semantic.DeepEqual(a, b)
}

// splitReplicaSets returns the set whose template is d's (the oldest, if
// several) and the others.
func splitReplicaSets(d *appsv1.Deployment, all []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	sorted := append([]*appsv1.ReplicaSet(nil), all...)
	sort.SliceStable(sorted, func(i, j int) bool { return olderRS(sorted[i], sorted[j]) })
	var newRS *appsv1.ReplicaSet
	var olds []*appsv1.ReplicaSet
	for _, rs := range sorted {
		if newRS == nil && equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			newRS = rs
			continue
		}
		olds = append(olds, rs)
	}
	return newRS, olds
}

func olderRS(a, b *appsv1.ReplicaSet) bool {
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

func revision(m metav1.Object) int64 {
	v, _ := strconv.ParseInt(m.GetAnnotations()[RevisionAnnotation], 10, 64)
	return v
}

func specReplicas(rs *appsv1.ReplicaSet) int32 { return ptr.Deref(rs.Spec.Replicas, 1) }

func sumSpec(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += specReplicas(rs)
		}
	}
	return n
}

func sumAvailable(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		if rs != nil {
			n += rs.Status.AvailableReplicas
		}
	}
	return n
}

func (r *rollout) fenceposts() (int32, int32, error) {
	if r.d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0, 0, nil
	}
	ru := r.d.Spec.Strategy.RollingUpdate
	if ru == nil {
		ru = &appsv1.RollingUpdateDeployment{}
	}
	return ResolveFenceposts(ru.MaxSurge, ru.MaxUnavailable, replicas(r.d))
}

// isScalingEvent reports whether d's replicas changed since its active
// sets were last sized (their desired-replicas annotation).
func (r *rollout) isScalingEvent() bool {
	for _, rs := range r.all {
		if specReplicas(rs) == 0 {
			continue
		}
		if v, ok := rs.Annotations[DesiredReplicasAnnotation]; ok && v != strconv.Itoa(int(replicas(r.d))) {
			return true
		}
	}
	return false
}

// newReplicaSet finds the set for d's template, bringing its revision
// annotations up to date, or creates it (at size replicas) when create is
// set. It also keeps d's revision annotation in step.
func (r *rollout) newReplicaSet(ctx context.Context, create bool, size int32) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	newRS, olds := splitReplicaSets(r.d, r.all)
	var maxOld int64
	for _, rs := range olds {
		maxOld = max(maxOld, revision(rs))
	}
	next := maxOld + 1
	d := r.d
	if newRS != nil {
		if rev := revision(newRS); rev < next {
			rs := newRS.DeepCopy()
			if rs.Annotations == nil {
				rs.Annotations = map[string]string{}
			}
			if rev > 0 {
				hist := rs.Annotations[RevisionHistoryAnnotation]
				if hist != "" {
					hist += ","
				}
				rs.Annotations[RevisionHistoryAnnotation] = hist + strconv.FormatInt(rev, 10)
			}
			rs.Annotations[RevisionAnnotation] = strconv.FormatInt(next, 10)
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			got, err := r.c.cfg.Client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
			if err != nil {
				return nil, nil, fmt.Errorf("updating revision of %s: %w", rs.Name, err)
			}
			newRS = got
			r.foundRS = true
		} else if newRS.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs := newRS.DeepCopy()
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			got, err := r.c.cfg.Client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
			if err != nil {
				return nil, nil, err
			}
			newRS = got
		}
		return newRS, olds, r.setDeploymentRevision(ctx, revision(newRS))
	}
	if !create {
		return nil, olds, nil
	}
	hash := TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	t := d.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	ann := map[string]string{}
	for k, v := range d.Annotations {
		if k != lastAppliedAnnotation && !strings.HasPrefix(k, "deployment.kubernetes.io/") {
			ann[k] = v
		}
	}
	surge, _, err := r.fenceposts()
	if err != nil {
		return nil, nil, err
	}
	ann[RevisionAnnotation] = strconv.FormatInt(next, 10)
	ann[DesiredReplicasAnnotation] = strconv.Itoa(int(replicas(d)))
	ann[MaxReplicasAnnotation] = strconv.Itoa(int(replicas(d) + surge))
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          maps.Clone(t.Labels),
			Annotations:     ann,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, kind)},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(size), MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: *t},
	}
	created, err := r.c.cfg.Client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := r.c.cfg.Client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if gerr != nil {
			return nil, nil, gerr
		}
		if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == d.UID && equalIgnoreHash(&existing.Spec.Template, &d.Spec.Template) {
			return existing, olds, nil // our cache was behind
		}
		// A hash collision: another template owns the name. Count it, so the
		// next hash differs.
		st := d.DeepCopy()
		st.Status.CollisionCount = ptr.To(ptr.Deref(d.Status.CollisionCount, 0) + 1)
		if _, uerr := r.c.cfg.Client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, st, metav1.UpdateOptions{}); uerr != nil {
			return nil, nil, uerr
		}
		return nil, nil, fmt.Errorf("hash collision on replica set %s; retrying with collisionCount %d", rs.Name, *st.Status.CollisionCount)
	}
	if err != nil {
		r.c.cfg.Recorder.Eventf(d, corev1.EventTypeWarning, "FailedCreate", "Failed to create new replica set %q: %v", rs.Name, err)
		return nil, nil, err
	}
	if size > 0 {
		r.c.cfg.Recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s to %d", created.Name, size)
	}
	r.createdRS = true
	r.all = append(r.all, created)
	return created, olds, r.setDeploymentRevision(ctx, next)
}

func (r *rollout) setDeploymentRevision(ctx context.Context, rev int64) error {
	v := strconv.FormatInt(rev, 10)
	if r.d.Annotations[RevisionAnnotation] == v {
		return nil
	}
	d := r.d.DeepCopy()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = v
	got, err := r.c.cfg.Client.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("updating revision annotation: %w", err)
	}
	r.d = got
	return nil
}

// scaleRS sets rs's size (and its desired/max annotations) and reports
// whether it changed anything.
func (r *rollout) scaleRS(ctx context.Context, rs *appsv1.ReplicaSet, size int32) (bool, *appsv1.ReplicaSet, error) {
	surge, _, err := r.fenceposts()
	if err != nil {
		return false, rs, err
	}
	desired, maxR := strconv.Itoa(int(replicas(r.d))), strconv.Itoa(int(replicas(r.d)+surge))
	if specReplicas(rs) == size && rs.Annotations[DesiredReplicasAnnotation] == desired && rs.Annotations[MaxReplicasAnnotation] == maxR {
		return false, rs, nil
	}
	from := specReplicas(rs)
	cp := rs.DeepCopy()
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[DesiredReplicasAnnotation] = desired
	cp.Annotations[MaxReplicasAnnotation] = maxR
	cp.Spec.Replicas = ptr.To(size)
	got, err := r.c.cfg.Client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, fmt.Errorf("scaling %s to %d: %w", rs.Name, size, err)
	}
	for i := range r.all {
		if r.all[i].UID == got.UID {
			r.all[i] = got
		}
	}
	if from != size {
		dir := "up"
		if size < from {
			dir = "down"
		}
		r.c.cfg.Recorder.Eventf(r.d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", dir, rs.Name, from, size)
	}
	return from != size, got, nil
}

// syncOnly is a sync without a rollout: paused, or a change of replicas.
func (r *rollout) syncOnly(ctx context.Context) (time.Duration, error) {
	newRS, olds, err := r.newReplicaSet(ctx, false, 0)
	if err != nil {
		return 0, err
	}
	if err := r.scale(ctx, newRS, olds); err != nil {
		return 0, err
	}
	newRS, olds = splitReplicaSets(r.d, r.all)
	if r.d.Spec.Paused {
		if err := r.cleanup(ctx, olds); err != nil {
			return 0, err
		}
	}
	return r.c.syncStatus(ctx, r.d, newRS, olds, r.createdRS || r.foundRS)
}

// scale sizes the sets for d's replicas; in a rollout, proportionally.
func (r *rollout) scale(ctx context.Context, newRS *appsv1.ReplicaSet, olds []*appsv1.ReplicaSet) error {
	want := replicas(r.d)
	var active []*appsv1.ReplicaSet
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, olds...) {
		if rs != nil && specReplicas(rs) > 0 {
			active = append(active, rs)
		}
	}
	if len(active) <= 1 {
		target := newRS
		if len(active) == 1 {
			target = active[0]
		} else if target == nil && len(olds) > 0 {
			target = olds[len(olds)-1] // the latest
		}
		if target == nil {
			return nil
		}
		_, _, err := r.scaleRS(ctx, target, want)
		return err
	}
	if newRS != nil && specReplicas(newRS) == want && newRS.Status.AvailableReplicas == want {
		for _, rs := range olds {
			if _, _, err := r.scaleRS(ctx, rs, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if r.d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return nil
	}
	surge, _, err := r.fenceposts()
	if err != nil {
		return err
	}
	delta := want + surge - sumSpec(active)
	// Largest first takes the rounding; on a tie the newer set.
	sort.SliceStable(active, func(i, j int) bool {
		if a, b := specReplicas(active[i]), specReplicas(active[j]); a != b {
			return a > b
		}
		return olderRS(active[j], active[i])
	})
	sizes := make([]int32, len(active))
	for i, rs := range active {
		sizes[i] = specReplicas(rs)
	}
	for i, n := range Proportions(sizes, delta) {
		if _, _, err := r.scaleRS(ctx, active[i], n); err != nil {
			return err
		}
	}
	return nil
}

// rolling is one step of a RollingUpdate.
func (r *rollout) rolling(ctx context.Context) (time.Duration, error) {
	surge, unavailable, err := r.fenceposts()
	if err != nil {
		return 0, err
	}
	want := replicas(r.d)
	newRS, olds := splitReplicaSets(r.d, r.all)
	size := int32(0)
	if newRS == nil {
		size = NewRSReplicas(want, surge, sumSpec(olds), 0)
	}
	newRS, olds, err = r.newReplicaSet(ctx, true, size)
	if err != nil {
		return 0, err
	}
	// Grow the new set as far as the surge allows.
	if target := NewRSReplicas(want, surge, sumSpec(r.all), specReplicas(newRS)); target != specReplicas(newRS) {
		if _, _, err := r.scaleRS(ctx, newRS, target); err != nil {
			return 0, err
		}
		newRS, olds = splitReplicaSets(r.d, r.all)
		return r.c.syncStatus(ctx, r.d, newRS, olds, true)
	}
	// Shrink the old sets as far as availability allows. Only on settled
	// counts: a set whose last resize its loop has not acted on yet still
	// reports pods that are going away as available.
	if sumSpec(olds) > 0 && settled(r.all) {
		var counts []RSCount
		for _, rs := range olds {
			counts = append(counts, RSCount{Spec: specReplicas(rs), Available: rs.Status.AvailableReplicas})
		}
		minAvailable := want - unavailable
		maxDown := MaxOldScaleDown(sumSpec(r.all), minAvailable, specReplicas(newRS), newRS.Status.AvailableReplicas)
		sizes := ScaleDownOld(counts, maxDown, sumAvailable(r.all), minAvailable)
		changed := false
		for i, n := range sizes {
			if n != specReplicas(olds[i]) {
				if _, _, err := r.scaleRS(ctx, olds[i], n); err != nil {
					return 0, err
				}
				changed = true
			}
		}
		if changed {
			newRS, olds = splitReplicaSets(r.d, r.all)
			return r.c.syncStatus(ctx, r.d, newRS, olds, true)
		}
	}
	newRS, olds = splitReplicaSets(r.d, r.all)
	if st := r.c.status(r.d, newRS, olds); Complete(r.d, &st) {
		if err := r.cleanup(ctx, olds); err != nil {
			return 0, err
		}
	}
	return r.c.syncStatus(ctx, r.d, newRS, olds, r.createdRS || r.foundRS)
}

// settled reports whether every set's loop has acted on its current size.
func settled(rss []*appsv1.ReplicaSet) bool {
	for _, rs := range rss {
		if rs.Status.ObservedGeneration < rs.Generation || rs.Status.Replicas > specReplicas(rs) {
			return false
		}
	}
	return true
}

// recreate is one step of a Recreate rollout: old sets to zero, wait for
// their pods to go, then the new set to full size.
func (r *rollout) recreate(ctx context.Context) (time.Duration, error) {
	newRS, olds, err := r.newReplicaSet(ctx, false, 0)
	if err != nil {
		return 0, err
	}
	scaled := false
	for _, rs := range olds {
		if specReplicas(rs) > 0 {
			if _, _, err := r.scaleRS(ctx, rs, 0); err != nil {
				return 0, err
			}
			scaled = true
		}
	}
	if scaled {
		newRS, olds = splitReplicaSets(r.d, r.all)
		return r.c.syncStatus(ctx, r.d, newRS, olds, true)
	}
	running, err := r.oldPodsRunning(olds)
	if err != nil {
		return 0, err
	}
	if running {
		return r.c.syncStatus(ctx, r.d, newRS, olds, false)
	}
	if newRS == nil {
		if newRS, olds, err = r.newReplicaSet(ctx, true, replicas(r.d)); err != nil {
			return 0, err
		}
	}
	if _, _, err := r.scaleRS(ctx, newRS, replicas(r.d)); err != nil {
		return 0, err
	}
	newRS, olds = splitReplicaSets(r.d, r.all)
	if st := r.c.status(r.d, newRS, olds); Complete(r.d, &st) {
		if err := r.cleanup(ctx, olds); err != nil {
			return 0, err
		}
	}
	return r.c.syncStatus(ctx, r.d, newRS, olds, r.createdRS || r.foundRS)
}

// oldPodsRunning reports whether any pod of the old sets still exists and
// has not finished (terminating pods count: they may still run).
func (r *rollout) oldPodsRunning(olds []*appsv1.ReplicaSet) (bool, error) {
	for _, rs := range olds {
		if rs.Status.Replicas > 0 {
			return true, nil
		}
	}
	uids := map[string]bool{}
	for _, rs := range olds {
		uids[string(rs.UID)] = true
	}
	ps, err := r.c.pods.Pods(r.d.Namespace).List(labels.Everything())
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		ref := metav1.GetControllerOf(p)
		if ref != nil && uids[string(ref.UID)] && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true, nil
		}
	}
	return false, nil
}

// cleanup deletes the oldest empty old sets beyond revisionHistoryLimit.
func (r *rollout) cleanup(ctx context.Context, olds []*appsv1.ReplicaSet) error {
	limit := int(ptr.Deref(r.d.Spec.RevisionHistoryLimit, defaultRevisionHistory))
	var empty []*appsv1.ReplicaSet
	for _, rs := range olds {
		if specReplicas(rs) == 0 && rs.Status.Replicas == 0 && rs.DeletionTimestamp == nil && rs.Status.ObservedGeneration >= rs.Generation {
			empty = append(empty, rs)
		}
	}
	if len(empty) <= limit {
		return nil
	}
	sort.SliceStable(empty, func(i, j int) bool {
		if a, b := revision(empty[i]), revision(empty[j]); a != b {
			return a < b
		}
		return olderRS(empty[i], empty[j])
	})
	for _, rs := range empty[:len(empty)-limit] {
		err := r.c.cfg.Client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

var _ = labels.Everything
