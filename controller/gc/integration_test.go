package gc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var ctx = context.Background()

func deploy(t *testing.T, cs kubernetes.Interface, ns string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "pods up", func() (bool, error) {
		ps, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(ps.Items) == int(replicas), err
	})
}

func counts(t *testing.T, cs kubernetes.Interface, ns string) (deps, rss, pods int) {
	t.Helper()
	d, err1 := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	r, err2 := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	p, err3 := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	return len(d.Items), len(r.Items), len(p.Items)
}

func TestPropagationPolicies(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	ctltest.Start(t, env, nil)

	t.Run("Foreground", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "foreground")
		deploy(t, cs, ns, 3)
		fg := metav1.DeletePropagationForeground
		if err := cs.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
			t.Fatal(err)
		}
		// The owner outlives its dependents: whenever it is gone, they are
		// too; while any dependent exists, the owner is still there.
		sawWaiting := false
		poll.Until(t, 20*time.Second, "everything gone", func() (bool, error) {
			d, r, p := counts(t, cs, ns)
			if d == 0 && (r > 0 || p > 0) {
				t.Fatalf("deployment gone while %d replica sets and %d pods remain", r, p)
			}
			if d == 1 && (r > 0 || p > 0) {
				sawWaiting = true
			}
			return d+r+p == 0, fmt.Errorf("%d deployments, %d replica sets, %d pods", d, r, p)
		})
		if !sawWaiting {
			t.Log("the deployment was never seen waiting for its dependents (all went between two polls)")
		}
	})

	t.Run("Orphan", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "orphan")
		deploy(t, cs, ns, 2)
		or := metav1.DeletePropagationOrphan
		if err := cs.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &or}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 20*time.Second, "deployment gone, replica set orphaned", func() (bool, error) {
			_, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("deployment: %v", err)
			}
			rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
			if err != nil || len(rss.Items) != 1 {
				return false, fmt.Errorf("replica sets: %v", err)
			}
			if refs := rss.Items[0].OwnerReferences; len(refs) != 0 {
				return false, fmt.Errorf("replica set still owned: %v", refs)
			}
			return true, nil
		})
		// The orphaned set keeps its pods and keeps running them.
		_, r, p := counts(t, cs, ns)
		if r != 1 || p != 2 {
			t.Errorf("%d replica sets, %d pods after orphaning; want 1, 2", r, p)
		}
	})

	t.Run("OwnerGoneBeforeDependentSeen", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "dangling")
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ref := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: cm.UID}
		keep := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "keeper", UID: "not-yet"}
		keeper, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keeper"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		keep.UID = keeper.UID
		for name, refs := range map[string][]metav1.OwnerReference{"dep": {ref}, "two-owners": {ref, keep}} {
			if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: refs}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 20*time.Second, "sole dependent deleted, shared one released", func() (bool, error) {
			_, err := cs.CoreV1().Secrets(ns).Get(ctx, "dep", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("dep: %v", err)
			}
			s, err := cs.CoreV1().Secrets(ns).Get(ctx, "two-owners", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return len(s.OwnerReferences) == 1 && s.OwnerReferences[0].UID == keeper.UID, fmt.Errorf("refs %v", s.OwnerReferences)
		})
	})
}
