package replicaset

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestSlowStartBatches(t *testing.T) {
	for _, tc := range []struct {
		total, initial int
		want           []int
	}{
		{0, 1, nil},
		{1, 1, []int{1}},
		{3, 1, []int{1, 2}},
		{10, 1, []int{1, 2, 4, 3}},
		{500, 1, []int{1, 2, 4, 8, 16, 32, 64, 128, 245}},
		{5, 0, []int{1, 2, 2}},
	} {
		if got := SlowStartBatches(tc.total, tc.initial); !slices.Equal(got, tc.want) {
			t.Errorf("SlowStartBatches(%d, %d) = %v, want %v", tc.total, tc.initial, got, tc.want)
		}
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type podOpt func(*corev1.Pod)

func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0)}}
	p.Spec.NodeName = "n1"
	p.Status.Phase = corev1.PodRunning
	ready(0)(p)
	for _, o := range opts {
		o(p)
	}
	return p
}

func unscheduled(p *corev1.Pod) { p.Spec.NodeName = "" }
func pending(p *corev1.Pod)     { p.Status.Phase = corev1.PodPending }
func notReady(p *corev1.Pod)    { p.Status.Conditions = nil }
func onNode(n string) podOpt    { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func created(d time.Duration) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t0.Add(d)) }
}
func ready(since time.Duration) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(since))}}
	}
}
func withRestarts(n int32) podOpt {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: n}} }
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestPodsToDelete(t *testing.T) {
	for _, tc := range []struct {
		name string
		pods []*corev1.Pod
		n    int
		want []string
	}{
		{"none", []*corev1.Pod{pod("a")}, 0, nil},
		{"all", []*corev1.Pod{pod("a"), pod("b")}, 5, []string{"a", "b"}},
		{"unscheduled first", []*corev1.Pod{pod("a"), pod("b", unscheduled), pod("c", pending)}, 1, []string{"b"}},
		{"pending before running", []*corev1.Pod{pod("a"), pod("b", pending)}, 1, []string{"b"}},
		{"not ready before ready", []*corev1.Pod{pod("a"), pod("b", notReady), pod("c")}, 1, []string{"b"}},
		{"crowded node first", []*corev1.Pod{pod("a", onNode("n1")), pod("b", onNode("n2")), pod("c", onNode("n2"))}, 2, []string{"c", "b"}},
		{"ready for less time first", []*corev1.Pod{pod("a", ready(time.Minute)), pod("b", ready(time.Hour)), pod("c", ready(time.Second))}, 2, []string{"b", "a"}},
		{"more restarts first", []*corev1.Pod{pod("a", withRestarts(1)), pod("b", withRestarts(5))}, 1, []string{"b"}},
		{"youngest first", []*corev1.Pod{pod("a", created(time.Hour)), pod("b", created(2*time.Hour)), pod("c")}, 2, []string{"b", "a"}},
		{"order of criteria", []*corev1.Pod{
			pod("running-young", created(time.Hour)),
			pod("pending", pending, created(-time.Hour)),
			pod("unscheduled", unscheduled, created(-2*time.Hour)),
			pod("notready", notReady, created(-time.Hour)),
			pod("old"),
		}, 4, []string{"unscheduled", "pending", "notready", "running-young"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := names(PodsToDelete(tc.pods, tc.n))
			if tc.name == "all" {
				slices.Sort(got)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("PodsToDelete = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCalculateStatus(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Spec: appsv1.ReplicaSetSpec{
		Replicas: ptr.To[int32](4), MinReadySeconds: 10,
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x", "tier": "web"}}},
	}}
	now := t0.Add(time.Minute)
	full := func(p *corev1.Pod) { p.Labels = map[string]string{"app": "x", "tier": "web"} }
	ps := []*corev1.Pod{
		pod("available", full),                                  // ready since t0: a minute > 10s
		pod("ready-not-available", ready(55*time.Second), full), // available in 5s
		pod("not-ready", notReady, full),
		pod("partly-labelled", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "x"} }),
	}
	st, next := CalculateStatus(rs, ps, now)
	want := appsv1.ReplicaSetStatus{Replicas: 4, FullyLabeledReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 2, ObservedGeneration: 3}
	if st.Replicas != want.Replicas || st.FullyLabeledReplicas != want.FullyLabeledReplicas || st.ReadyReplicas != want.ReadyReplicas ||
		st.AvailableReplicas != want.AvailableReplicas || st.ObservedGeneration != want.ObservedGeneration {
		t.Errorf("status = %+v, want %+v", st, want)
	}
	if next != 5*time.Second {
		t.Errorf("next availability in %s, want 5s", next)
	}
}

func TestExpectations(t *testing.T) {
	now := t0
	e := newExpectations(func() time.Time { return now })
	if !e.Satisfied("a") {
		t.Fatal("unknown key not satisfied")
	}
	e.ExpectCreations("a", 2)
	e.CreationObserved("a")
	if e.Satisfied("a") {
		t.Fatal("satisfied with one creation outstanding")
	}
	e.CreationObserved("a")
	if !e.Satisfied("a") {
		t.Fatal("not satisfied after both creations")
	}
	e.ExpectDeletions("a", []types.UID{"u1", "u2"})
	e.DeletionObserved("a", "u1")
	e.DeletionObserved("a", "u1") // the same pod seen twice counts once
	if e.Satisfied("a") {
		t.Fatal("satisfied with u2 outstanding")
	}
	now = now.Add(expectationTTL + time.Second)
	if !e.Satisfied("a") {
		t.Fatal("expired expectations still block")
	}
}
