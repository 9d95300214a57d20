package replicaset_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var ctx = context.Background()

func podsOf(t *testing.T, cs kubernetes.Interface, ns string) (owned, orphans []corev1.Pod) {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if metav1.GetControllerOf(&p) != nil {
			owned = append(owned, p)
		} else {
			orphans = append(orphans, p)
		}
	}
	return owned, orphans
}

func TestAdoptReleaseAndScaleDown(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	ctltest.Start(t, env, nil)
	ns := ctltest.Namespace(t, cs, "rs")
	labels := map[string]string{"app": "x"}
	for _, name := range []string{"orphan-1", "orphan-2"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app:1"}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}, Spec: appsv1.ReplicaSetSpec{
		Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app:1"}}}}}}
	created, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "orphans adopted, one pod created", func() (bool, error) {
		owned, orphans := podsOf(t, cs, ns)
		adopted := 0
		for _, p := range owned {
			if metav1.GetControllerOf(&p).UID == created.UID && (p.Name == "orphan-1" || p.Name == "orphan-2") {
				adopted++
			}
		}
		return len(owned) == 3 && len(orphans) == 0 && adopted == 2, fmt.Errorf("%d owned (%d adopted), %d orphans", len(owned), adopted, len(orphans))
	})

	// A pod relabelled out of the selector is released and replaced.
	patch := []byte(`{"metadata":{"labels":{"app":"y"}}}`)
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "orphan-1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "orphan-1 released and replaced", func() (bool, error) {
		owned, orphans := podsOf(t, cs, ns)
		return len(owned) == 3 && len(orphans) == 1 && orphans[0].Name == "orphan-1", fmt.Errorf("%d owned, %d orphans", len(owned), len(orphans))
	})

	// Scale down to 1 with one pod ready: the ready one stays.
	owned, _ := podsOf(t, cs, ns)
	keep := owned[1]
	now := metav1.Now()
	keep.Status.Phase = corev1.PodRunning
	keep.Status.PodIP = "10.244.0.7"
	keep.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, &keep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "status counts the ready pod", func() (bool, error) {
		got, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "x", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := got.Status
		return st.Replicas == 3 && st.ReadyReplicas == 1 && st.AvailableReplicas == 1 && st.FullyLabeledReplicas == 3 &&
			st.ObservedGeneration == got.Generation, fmt.Errorf("status %+v", st)
	})
	got, _ := cs.AppsV1().ReplicaSets(ns).Get(ctx, "x", metav1.GetOptions{})
	got.Spec.Replicas = ptr.To[int32](1)
	if _, err := cs.AppsV1().ReplicaSets(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "one pod left, the ready one", func() (bool, error) {
		owned, _ := podsOf(t, cs, ns)
		return len(owned) == 1 && owned[0].Name == keep.Name, fmt.Errorf("%d owned", len(owned))
	})
	// And it stays at one: no recreate from a stale cache.
	poll.Until(t, 10*time.Second, "status settles at 1", func() (bool, error) {
		got, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "x", metav1.GetOptions{})
		return err == nil && got.Status.Replicas == 1 && got.Status.ObservedGeneration == got.Generation, err
	})
	if owned, _ := podsOf(t, cs, ns); len(owned) != 1 {
		t.Errorf("%d pods after settling, want 1", len(owned))
	}
}
