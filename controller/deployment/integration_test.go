package deployment_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/deployment"
	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var ctx = context.Background()

func newDeployment(ns, name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func activePods(t *testing.T, cs kubernetes.Interface, ns string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// waitComplete waits until the rollout of d is done: status as `rollout
// status` reads it, and exactly replicas pods, all running image.
func waitComplete(t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32, image string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	poll.Until(t, 60*time.Second, fmt.Sprintf("%s/%s: %d ready pods of %s", ns, name, replicas, image), func() (bool, error) {
		var err error
		if d, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return false, err
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != replicas || st.Replicas != replicas ||
			st.AvailableReplicas != replicas || st.ReadyReplicas != replicas {
			return false, fmt.Errorf("status %+v", st)
		}
		pods := activePods(t, cs, ns)
		if len(pods) != int(replicas) {
			return false, fmt.Errorf("%d pods", len(pods))
		}
		for _, p := range pods {
			if p.Spec.Containers[0].Image != image {
				return false, fmt.Errorf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
			}
		}
		return true, nil
	})
	return d
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func setImage(t *testing.T, cs kubernetes.Interface, ns, name, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("set image: %v", err)
	}
}

func scale(t *testing.T, cs kubernetes.Interface, ns, name string, n int32) {
	t.Helper()
	_, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, name, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("scale to %d: %v", n, err)
	}
}

func replicaSets(t *testing.T, cs kubernetes.Interface, ns string) []appsv1.ReplicaSet {
	t.Helper()
	list, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list replicasets: %v", err)
	}
	return list.Items
}

// podWatch follows the namespace's pods from rv and checks a condition on
// every event.
type podWatch struct {
	ready, total map[string]bool
	minReady     int
	maxTotal     int
	maxMixed     int // events on which old and new images ran together
	oldImage     string
	newImage     string
	images       map[string]string
	done         chan struct{}
	stop         func()
}

func watchPods(t *testing.T, cs kubernetes.Interface, ns, oldImage, newImage string) *podWatch {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	pw := &podWatch{ready: map[string]bool{}, total: map[string]bool{}, images: map[string]string{},
		oldImage: oldImage, newImage: newImage, done: make(chan struct{}), stop: w.Stop}
	apply := func(p *corev1.Pod, deleted bool) {
		delete(pw.ready, p.Name)
		delete(pw.total, p.Name)
		delete(pw.images, p.Name)
		if deleted || p.DeletionTimestamp != nil {
			return
		}
		pw.total[p.Name] = true
		pw.images[p.Name] = p.Spec.Containers[0].Image
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				pw.ready[p.Name] = true
			}
		}
	}
	observe := func() {
		pw.minReady = min(pw.minReady, len(pw.ready))
		pw.maxTotal = max(pw.maxTotal, len(pw.total))
		var o, n bool
		for _, img := range pw.images {
			o = o || img == pw.oldImage
			n = n || img == pw.newImage
		}
		if o && n {
			pw.maxMixed++
		}
	}
	for i := range list.Items {
		apply(&list.Items[i], false)
	}
	pw.minReady = len(pw.ready)
	observe()
	go func() {
		defer close(pw.done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			apply(p, ev.Type == watch.Deleted)
			observe()
		}
	}()
	return pw
}

func (pw *podWatch) finish() { pw.stop(); <-pw.done }

func TestDeployment(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	ctltest.Start(t, env, nil)

	t.Run("ScaleUpAndDown", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "scale")
		ctltest.StartKubelet(t, cs, ns, nil)
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, newDeployment(ns, "web", 5, "app:1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		d := waitComplete(t, cs, ns, "web", 5, "app:1")
		if c := condition(d, appsv1.DeploymentAvailable); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("Available condition = %+v", c)
		}
		poll.Until(t, 10*time.Second, "Progressing=NewReplicaSetAvailable", func() (bool, error) {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			c := condition(d, appsv1.DeploymentProgressing)
			return c != nil && c.Reason == deployment.ReasonNewRSAvailable, fmt.Errorf("%+v", c)
		})
		if d.Annotations[deployment.RevisionAnnotation] != "1" {
			t.Errorf("revision = %q, want 1", d.Annotations[deployment.RevisionAnnotation])
		}
		for _, p := range activePods(t, cs, ns) {
			ref := metav1.GetControllerOf(&p)
			if ref == nil || ref.Kind != "ReplicaSet" || !strings.HasPrefix(p.Name, "web-") || p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == "" {
				t.Errorf("pod %s: owner %+v labels %v", p.Name, ref, p.Labels)
			}
		}
		scale(t, cs, ns, "web", 10)
		waitComplete(t, cs, ns, "web", 10, "app:1")
		scale(t, cs, ns, "web", 0)
		waitComplete(t, cs, ns, "web", 0, "app:1")
		if n := len(replicaSets(t, cs, ns)); n != 1 {
			t.Errorf("%d replica sets after scaling, want 1", n)
		}
		poll.Until(t, 10*time.Second, "ScalingReplicaSet and SuccessfulCreate events", func() (bool, error) {
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			reasons := map[string]bool{}
			for _, e := range evs.Items {
				reasons[e.Reason] = true
			}
			return reasons["ScalingReplicaSet"] && reasons["SuccessfulCreate"] && reasons["SuccessfulDelete"], fmt.Errorf("reasons %v", reasons)
		})
	})

	t.Run("RollingUpdateAndRollback", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "rolling")
		ctltest.StartKubelet(t, cs, ns, nil)
		d := newDeployment(ns, "web", 6, "app:1")
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(2)), MaxUnavailable: ptr.To(intstr.FromString("20%"))}
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, cs, ns, "web", 6, "app:1")
		// maxUnavailable 20% of 6 rounds down to 1; maxSurge is 2.
		for _, step := range []struct{ from, to, rev string }{{"app:1", "app:2", "2"}, {"app:2", "app:3", "3"}} {
			pw := watchPods(t, cs, ns, step.from, step.to)
			setImage(t, cs, ns, "web", step.to)
			got := waitComplete(t, cs, ns, "web", 6, step.to)
			pw.finish()
			if pw.minReady < 5 {
				t.Errorf("%s → %s: ready pods fell to %d, below replicas-maxUnavailable = 5", step.from, step.to, pw.minReady)
			}
			if pw.maxTotal > 8 {
				t.Errorf("%s → %s: %d pods at once, above replicas+maxSurge = 8", step.from, step.to, pw.maxTotal)
			}
			if pw.maxMixed == 0 {
				t.Errorf("%s → %s: old and new pods never ran together; not a rolling update", step.from, step.to)
			}
			if r := got.Annotations[deployment.RevisionAnnotation]; r != step.rev {
				t.Errorf("revision = %s, want %s", r, step.rev)
			}
		}
		// Rollback as `rollout undo --to-revision=1` does: put revision 1's
		// template back.
		var rev1 *appsv1.ReplicaSet
		for _, rs := range replicaSets(t, cs, ns) {
			if rs.Annotations[deployment.RevisionAnnotation] == "1" {
				rev1 = rs.DeepCopy()
			}
		}
		if rev1 == nil {
			t.Fatal("no replica set of revision 1")
		}
		cur, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tmpl := rev1.Spec.Template.DeepCopy()
		delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		cur.Spec.Template = *tmpl
		pw := watchPods(t, cs, ns, "app:3", "app:1")
		if _, err := cs.AppsV1().Deployments(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		got := waitComplete(t, cs, ns, "web", 6, "app:1")
		pw.finish()
		if pw.minReady < 5 {
			t.Errorf("rollback: ready pods fell to %d", pw.minReady)
		}
		if r := got.Annotations[deployment.RevisionAnnotation]; r != "4" {
			t.Errorf("revision after rollback = %s, want 4", r)
		}
		rss := replicaSets(t, cs, ns)
		if len(rss) != 3 {
			t.Errorf("%d replica sets after rollback, want 3 (the old one reused)", len(rss))
		}
		for _, rs := range rss {
			if rs.UID == rev1.UID {
				if rs.Annotations[deployment.RevisionAnnotation] != "4" || rs.Annotations[deployment.RevisionHistoryAnnotation] != "1" || *rs.Spec.Replicas != 6 {
					t.Errorf("revived replica set: replicas %d annotations %v", *rs.Spec.Replicas, rs.Annotations)
				}
			} else if *rs.Spec.Replicas != 0 {
				t.Errorf("old replica set %s still has %d replicas", rs.Name, *rs.Spec.Replicas)
			}
		}
	})

	t.Run("StuckRolloutAndProportionalScale", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "stuck")
		ctltest.StartKubelet(t, cs, ns, func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image == "app:broken" })
		d := newDeployment(ns, "web", 4, "app:1")
		d.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(2)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, cs, ns, "web", 4, "app:1")
		setImage(t, cs, ns, "web", "app:broken")
		start := time.Now()
		poll.Until(t, 20*time.Second, "ProgressDeadlineExceeded", func() (bool, error) {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			c := condition(d, appsv1.DeploymentProgressing)
			return c != nil && c.Status == corev1.ConditionFalse && c.Reason == deployment.ReasonDeadlineExceeded, fmt.Errorf("%+v", c)
		})
		t.Logf("ProgressDeadlineExceeded after %s (deadline 2s)", time.Since(start).Round(100*time.Millisecond))
		cur, _ := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if cur.Status.AvailableReplicas != 4 {
			t.Errorf("available = %d during a stuck rollout with maxUnavailable 0, want 4", cur.Status.AvailableReplicas)
		}
		evs, _ := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("reason", deployment.ReasonDeadlineExceeded).String()})
		if evs == nil || len(evs.Items) == 0 {
			all, _ := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			found := false
			for _, e := range all.Items {
				found = found || e.Reason == deployment.ReasonDeadlineExceeded
			}
			if !found {
				t.Errorf("no %s event", deployment.ReasonDeadlineExceeded)
			}
		}
		// Old set 4 + new set 2 (the surge); scaling to 8 allows 8+2 = 10
		// pods, so 4 more, spread 4:2 with the rounding to the larger set:
		// 4+2 → 7+3.
		scale(t, cs, ns, "web", 8)
		poll.Until(t, 20*time.Second, "proportional scale", func() (bool, error) {
			sizes := map[string]int32{}
			for _, rs := range replicaSets(t, cs, ns) {
				sizes[rs.Spec.Template.Spec.Containers[0].Image] = *rs.Spec.Replicas
			}
			return sizes["app:1"] == 7 && sizes["app:broken"] == 3, fmt.Errorf("sizes %v", sizes)
		})
	})

	t.Run("RecreateAndPause", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "recreate")
		ctltest.StartKubelet(t, cs, ns, nil)
		d := newDeployment(ns, "web", 4, "app:1")
		d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, cs, ns, "web", 4, "app:1")
		pw := watchPods(t, cs, ns, "app:1", "app:2")
		setImage(t, cs, ns, "web", "app:2")
		waitComplete(t, cs, ns, "web", 4, "app:2")
		pw.finish()
		if pw.maxMixed > 0 {
			t.Errorf("Recreate ran old and new pods together on %d events", pw.maxMixed)
		}

		// Paused: a template change makes no new set; resuming rolls it out.
		patch := []byte(`{"spec":{"paused":true}}`)
		if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		setImage(t, cs, ns, "web", "app:3")
		poll.Until(t, 10*time.Second, "Progressing=DeploymentPaused", func() (bool, error) {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			c := condition(d, appsv1.DeploymentProgressing)
			return d.Status.ObservedGeneration == d.Generation && c != nil && c.Reason == deployment.ReasonPaused, fmt.Errorf("%+v", c)
		})
		scale(t, cs, ns, "web", 5)
		poll.Until(t, 20*time.Second, "paused deployment scaled to 5", func() (bool, error) {
			ps := activePods(t, cs, ns)
			return len(ps) == 5, fmt.Errorf("%d pods", len(ps))
		})
		if n := len(replicaSets(t, cs, ns)); n != 2 {
			t.Errorf("%d replica sets while paused, want 2", n)
		}
		for _, p := range activePods(t, cs, ns) {
			if img := p.Spec.Containers[0].Image; img != "app:2" {
				t.Errorf("paused deployment runs %s", img)
			}
		}
		patch = []byte(`{"spec":{"paused":false}}`)
		if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, cs, ns, "web", 5, "app:3")
	})

	t.Run("DeleteRemovesReplicaSetsAndPods", func(t *testing.T) {
		ns := ctltest.Namespace(t, cs, "delete")
		ctltest.StartKubelet(t, cs, ns, nil)
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, newDeployment(ns, "web", 3, "app:1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, cs, ns, "web", 3, "app:1")
		setImage(t, cs, ns, "web", "app:2")
		waitComplete(t, cs, ns, "web", 3, "app:2")
		if err := cs.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 20*time.Second, "replica sets and pods gone", func() (bool, error) {
			rss, ps := replicaSets(t, cs, ns), activePods(t, cs, ns)
			return len(rss) == 0 && len(ps) == 0, fmt.Errorf("%d replica sets, %d pods", len(rss), len(ps))
		})
		if _, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("deployment still there: %v", err)
		}
	})
}
