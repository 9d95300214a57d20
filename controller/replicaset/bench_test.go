package replicaset

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// BenchmarkSteadyStateSync is the CPU cost of one reconcile of a
// ReplicaSet of 1,000 ready pods that needs no change (list, claim,
// count, compare status): the work a resync or an unrelated pod update
// costs. The clientset is client-go's fake, at the interface edge; no
// request is made.
func BenchmarkSteadyStateSync(b *testing.B) {
	const n = 1000
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(Config{Client: cs, Pods: f.Core().V1().Pods(), ReplicaSets: f.Apps().V1().ReplicaSets(),
		Recorder: record.NewFakeRecorder(100), Log: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	labels := map[string]string{"app": "x"}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "rs-uid", Generation: 1},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](n), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}}}}
	now := metav1.NewTime(time.Now().Add(-time.Hour))
	for i := range n {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("x-%d", i), Namespace: "ns", UID: types.UID(fmt.Sprint("p", i)), Labels: labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, kind)}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}}}
		if err := f.Core().V1().Pods().Informer().GetIndexer().Add(p); err != nil {
			b.Fatal(err)
		}
	}
	rs.Status = appsv1.ReplicaSetStatus{Replicas: n, FullyLabeledReplicas: n, ReadyReplicas: n, AvailableReplicas: n, ObservedGeneration: 1}
	if err := f.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(rs); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.sync(ctx, "ns/x"); err != nil {
		b.Fatal(err)
	}
	if acts := len(cs.Actions()); acts != 0 {
		b.Fatalf("steady state made %d requests", acts)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.sync(ctx, "ns/x"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/pod")
}
