package replicaset

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

func TestSlowStarts(t *testing.T) {
	s := newSlowStarts()
	if got := s.initial("ns/x"); got != 1 {
		t.Fatalf("first run starts at %d, want 1", got)
	}
	s.done("ns/x", SlowStartBatches(500, 1), true)
	if got := s.initial("ns/x"); got != 245 {
		t.Errorf("after a full run of 500 the next starts at %d, want its largest batch 245", got)
	}
	if got := SlowStartBatches(500, s.initial("ns/x")); !slices.Equal(got, []int{245, 255}) {
		t.Errorf("next run's batches %v, want [245 255]", got)
	}
	if got := s.initial("ns/y"); got != 1 {
		t.Errorf("another set starts at %d, want 1", got)
	}
	s.done("ns/x", []int{245, 255}, false)
	if got := s.initial("ns/x"); got != 1 {
		t.Errorf("after a failed run the next starts at %d, want 1", got)
	}
	s.done("ns/x", []int{1, 2}, true)
	s.forget("ns/x")
	if got := s.initial("ns/x"); got != 1 {
		t.Errorf("after forget the next run starts at %d, want 1", got)
	}
}

// TestCreationBatches: the first creation run of a set goes 1, 2, 4, …;
// the next, after it created everything, starts at the largest batch; a
// refused creation sends the one after back to a batch of one.
func TestCreationBatches(t *testing.T) {
	cs := fake.NewClientset()
	var mu sync.Mutex
	creates, refuse := 0, false
	cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		creates++
		if refuse {
			return true, nil, errors.New("refused")
		}
		return true, &corev1.Pod{}, nil
	})
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(Config{Client: cs, Pods: f.Core().V1().Pods(), ReplicaSets: f.Apps().V1().ReplicaSets(),
		Recorder: record.NewFakeRecorder(1000), Log: zap.NewNop(), BurstReplicas: 100})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "x"}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", UID: "rs-uid"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](1000), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}}}}
	ctx := context.Background()
	run := func() (int, error) {
		mu.Lock()
		creates = 0
		mu.Unlock()
		_, err := c.manage(ctx, rs, "ns/x", nil)
		mu.Lock()
		defer mu.Unlock()
		return creates, err
	}
	if n, err := run(); err != nil || n != 100 || c.starts.initial("ns/x") != 37 {
		t.Fatalf("first run: %d creations, %v, next start %d; want 100, nil, 37 (batches 1…32, 37)", n, err, c.starts.initial("ns/x"))
	}
	if n, err := run(); err != nil || n != 100 || c.starts.initial("ns/x") != 63 {
		t.Fatalf("second run: %d creations, %v, next start %d; want 100, nil, 63 (batches 37, 63)", n, err, c.starts.initial("ns/x"))
	}
	mu.Lock()
	refuse = true
	mu.Unlock()
	if n, err := run(); err == nil || n != 63 || c.starts.initial("ns/x") != 1 {
		t.Fatalf("refused run: %d creations, %v, next start %d; want 63 (one batch), an error, 1", n, err, c.starts.initial("ns/x"))
	}
}
