package replicaset

import (
	"slices"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubeish/kubeish/controller/pods"
)

// SlowStartBatches splits total creations into batches of initial, 2×initial,
// 4×initial, …, so that a template that cannot be created fails after one
// request rather than total (Kubernetes' slowStartBatch).
func SlowStartBatches(total, initial int) []int {
	var out []int
	for size := max(initial, 1); total > 0; size *= 2 {
		n := min(size, total)
		out = append(out, n)
		total -= n
	}
	return out
}

// PodsToDelete picks the n pods to remove on scale-down, cheapest loss
// first: unscheduled before scheduled, Pending before Unknown before
// Running, not ready before ready, pods on nodes crowded with this set's
// pods before others, ready for less time before longer, more restarts
// before fewer, and younger before older.
func PodsToDelete(candidates []*corev1.Pod, n int) []*corev1.Pod {
	if n <= 0 {
		return nil
	}
	if n >= len(candidates) {
		return append([]*corev1.Pod(nil), candidates...)
	}
	perNode := map[string]int{}
	for _, p := range candidates {
		if p.Spec.NodeName != "" {
			perNode[p.Spec.NodeName]++
		}
	}
	sorted := append([]*corev1.Pod(nil), candidates...)
	sort.SliceStable(sorted, func(i, j int) bool { return deleteFirst(sorted[i], sorted[j], perNode) })
	return sorted[:n]
}

var phaseRank = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// deleteFirst reports whether a should be deleted before b.
func deleteFirst(a, b *corev1.Pod, perNode map[string]int) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if ra, rb := phaseRank[a.Status.Phase], phaseRank[b.Status.Phase]; ra != rb {
		return ra < rb
	}
	if pods.IsReady(a) != pods.IsReady(b) {
		return !pods.IsReady(a)
	}
	if ca, cb := perNode[a.Spec.NodeName], perNode[b.Spec.NodeName]; ca != cb {
		return ca > cb
	}
	if pods.IsReady(a) && pods.IsReady(b) {
		ta, tb := pods.ReadyCondition(a).LastTransitionTime, pods.ReadyCondition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			return tb.Before(&ta)
		}
	}
	if ra, rb := restarts(a), restarts(b); ra != rb {
		return ra > rb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// CalculateStatus computes rs's status from its active pods at now. The
// duration, when positive, is when the next ready pod becomes available
// (so the caller can requeue for minReadySeconds).
func CalculateStatus(rs *appsv1.ReplicaSet, active []*corev1.Pod, now time.Time) (appsv1.ReplicaSetStatus, time.Duration) {
	st := rs.Status.DeepCopy()
	st.Replicas = int32(len(active))
	st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas = 0, 0, 0
	templ := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	minReady := time.Duration(rs.Spec.MinReadySeconds) * time.Second
	var next time.Duration
	for _, p := range active {
		if templ.Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if pods.IsReady(p) {
			st.ReadyReplicas++
		}
		ok, wait := pods.IsAvailable(p, minReady, now)
		if ok {
			st.AvailableReplicas++
		} else if wait > 0 && (next == 0 || wait < next) {
			next = wait
		}
	}
	st.ObservedGeneration = rs.Generation
	return *st, next
}

// slowStarts remembers, per ReplicaSet key, the batch a creation run may
// start with. Kubernetes starts every sync at one pod so that a template
// the apiserver refuses fails after one request, not 500; but once a sync
// has created all its pods the template is known good, and starting the
// next sync of a large scale-up at one again costs eight more round trips
// per 500 pods (seconds when the apiserver is busy). So a run that created
// everything lets the next one start at its largest batch; any failure, a
// set that needs no creation, or its deletion, start it at one again.
type slowStarts struct {
	mu sync.Mutex
	m  map[string]int
}

func newSlowStarts() *slowStarts { return &slowStarts{m: map[string]int{}} }

// initial is the first batch of key's next creation run.
func (s *slowStarts) initial(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[key]; n > 1 {
		return n
	}
	return 1
}

// done records a creation run of key in batches: all created (ok) or not.
func (s *slowStarts) done(key string, batches []int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || len(batches) == 0 {
		delete(s.m, key)
		return
	}
	s.m[key] = slices.Max(batches)
}

// forget starts key's next creation run at one.
func (s *slowStarts) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}
