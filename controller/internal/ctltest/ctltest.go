// Package ctltest runs the controller in-process against a test apiserver
// and stands in for the node agent: it marks pods Running and Ready with
// an IP, as a kubelet would.
package ctltest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/controller/app"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// Start runs a controller (no leader election, metrics on 127.0.0.1:0,
// short node timings) against env until the test ends. mutate may change
// the options first.
func Start(t testing.TB, env *testenv.Env, mutate func(*app.Options)) *app.Controller {
	t.Helper()
	o := app.NewOptions()
	o.LeaderElection.Enabled = false
	o.BindAddress = "127.0.0.1:0"
	o.NodeMonitorPeriod = 200 * time.Millisecond
	o.NodeMonitorGracePeriod = 2 * time.Second
	o.PodEvictionTimeout = 2 * time.Second
	if mutate != nil {
		mutate(o)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	c, err := app.New(o, env.Config, log)
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	return c
}

// Namespace creates a namespace named for the test.
func Namespace(t testing.TB, cs kubernetes.Interface, name string) string {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("namespace: %v", err)
	}
	return name
}

// Kubelet marks the pods of a namespace Running and Ready (with a pod IP)
// as they appear, unless Refuse says not to for a pod.
type Kubelet struct {
	cs     kubernetes.Interface
	ns     string
	Refuse func(*corev1.Pod) bool
	next   atomic.Int32
	wg     sync.WaitGroup
}

// StartKubelet runs a fake node agent for ns until the test ends.
func StartKubelet(t testing.TB, cs kubernetes.Interface, ns string, refuse func(*corev1.Pod) bool) *Kubelet {
	k := &Kubelet{cs: cs, ns: ns, Refuse: refuse}
	ctx, cancel := context.WithCancel(context.Background())
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.run(ctx)
	}()
	t.Cleanup(func() { cancel(); k.wg.Wait() })
	return k
}

func (k *Kubelet) run(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := k.cs.CoreV1().Pods(k.ns).Watch(ctx, metav1.ListOptions{SendInitialEvents: boolPtr(true),
			ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodRunning || (k.Refuse != nil && k.Refuse(p)) {
				continue
			}
			_ = k.MarkReady(ctx, p)
		}
		w.Stop()
	}
}

// MarkReady sets p Running, Ready (since now) and gives it an IP.
func (k *Kubelet) MarkReady(ctx context.Context, p *corev1.Pod) error {
	n := k.next.Add(1)
	cp := p.DeepCopy()
	now := metav1.Now()
	cp.Status.Phase = corev1.PodRunning
	cp.Status.PodIP = fmt.Sprintf("10.244.%d.%d", n/250, n%250+2)
	cp.Status.PodIPs = []corev1.PodIP{{IP: cp.Status.PodIP}}
	cp.Status.StartTime = &now
	cp.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	_, err := k.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

func boolPtr(b bool) *bool { return &b }
