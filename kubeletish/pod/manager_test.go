package pod

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kubeletish/runtime"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestManagerWithFakeRuntime runs the pod sync against the real apiserver
// and the fake runtime: a pod starts, a crashed container restarts, an
// orphan is removed, a graceful delete stops with the grace period and
// deletes the pod.
func TestManagerWithFakeRuntime(t *testing.T) {
	env := testenv.Start(t)
	fake := runtime.NewFake()
	fake.AddImage("img:v1")
	m := New(Config{NodeName: "n1", HostIP: "10.250.0.2", Client: env.Client, Runtime: fake, RootDir: t.TempDir(),
		CgroupParent: "/kubeish-unit/n1", RelistPeriod: 50 * time.Millisecond, ResyncPeriod: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()

	// An orphan from a pod the API does not have.
	orphan := runtime.PodRef{UID: "gone", Namespace: "default", Name: "gone"}
	sb, _ := fake.RunSandbox(ctx, orphan, false)
	if _, err := fake.StartContainer(ctx, sb, runtime.ContainerConfig{Pod: orphan, Name: "x", Image: "img:v1"}); err != nil {
		t.Fatal(err)
	}

	grace := int64(7)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: v1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &grace,
		Containers: []v1.Container{{Name: "c", Image: "img:v1", ImagePullPolicy: v1.PullIfNotPresent,
			Env: []v1.EnvVar{{Name: "N", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}}}}
	if _, err := env.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func() *v1.Pod {
		p, err := env.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return p
	}
	poll.Until(t, 15*time.Second, "Running", func() (bool, error) {
		p := get()
		return p != nil && p.Status.Phase == v1.PodRunning && p.Status.PodIP != "", nil
	})
	poll.Until(t, 15*time.Second, "orphan removed", func() (bool, error) {
		cs, _ := fake.ListContainers(ctx, "gone")
		s, _ := fake.GetSandbox(ctx, "gone")
		return len(cs) == 0 && s == nil, nil
	})

	cs, _ := fake.ListContainers(ctx, string(get().UID))
	fake.Exit(cs[0].ID, 1, "")
	poll.Until(t, 15*time.Second, "restart", func() (bool, error) {
		p := get()
		return p != nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1 && p.Status.ContainerStatuses[0].State.Running != nil, nil
	})

	if err := env.Client.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "pod deleted", func() (bool, error) {
		_, err := env.Client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	calls := strings.Join(fake.Calls, "\n")
	for _, want := range []string{"Start p/c#0", "Start p/c#1", "Stop p/c#1 grace=7s", "RemoveSandbox p", "RemoveSandbox gone"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	if left, _ := fake.ListContainers(ctx, ""); len(left) != 0 {
		t.Errorf("containers left: %+v", left)
	}
}
