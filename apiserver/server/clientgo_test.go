package server_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestClientGo: the typed clientset and shared informers (which use the
// watch-list protocol by default) work against the apiserver.
func TestClientGo(t *testing.T) {
	e := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := e.Client

	// Objects that exist before the informers start arrive in their
	// initial list; later ones through the watch.
	if _, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "early", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "echo:v1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(c, 0)
	podInf := factory.Core().V1().Pods()
	depInf := factory.Apps().V1().Deployments()
	podInf.Informer()
	depInf.Informer()
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }()
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), podInf.Informer().HasSynced, depInf.Informer().HasSynced) {
		t.Fatal("informers did not sync (watch-list protocol?)")
	}
	if _, err := podInf.Lister().Pods("default").Get("early"); err != nil {
		t.Fatalf("lister after sync: %v", err)
	}

	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "echo:v1"}}},
			},
		},
	}
	d, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "late", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "echo:v1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "informers to see the new objects", func() (bool, error) {
		pods, _ := podInf.Lister().List(labels.SelectorFromSet(labels.Set{"app": "web"}))
		_, derr := depInf.Lister().Deployments("default").Get("web")
		return len(pods) == 2 && derr == nil, derr
	})

	// Update through the client; the informer follows.
	d.Spec.Replicas = ptr.To[int32](4)
	if _, err := c.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	d.Status.Replicas = 4
	if _, err := c.AppsV1().Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err == nil {
		t.Fatal("status update with a stale resourceVersion succeeded")
	}
	poll.Until(t, 10*time.Second, "the informer to see replicas=4", func() (bool, error) {
		got, err := depInf.Lister().Deployments("default").Get("web")
		return err == nil && *got.Spec.Replicas == 4 && got.Generation == 2, err
	})
	scale, err := c.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || scale.Spec.Replicas != 4 {
		t.Fatalf("GetScale: %v %+v", err, scale)
	}

	// List with paging, the way client-go's pager and kubectl do.
	for _, n := range []string{"p1", "p2", "p3"} {
		if _, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: n},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "echo:v1"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 2}
	for {
		page, err := c.CoreV1().Pods("default").List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Items {
			names = append(names, p.Name)
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	if len(names) != 5 {
		t.Fatalf("paged list: %v", names)
	}

	// Watch through the clientset.
	w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=p1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := c.CoreV1().Pods("default").Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.ResultChan():
			done = ev.Type == "DELETED"
		case <-timeout:
			t.Fatal("no DELETED event through the clientset watch")
		}
	}
}
