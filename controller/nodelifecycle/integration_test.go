package nodelifecycle_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/app"
	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/controller/nodelifecycle"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var ctx = context.Background()

// agent stands in for a node's kubelet: it registers the Node as Ready
// and renews its Lease until stopped.
type agent struct {
	name    string
	stopped atomic.Bool
}

func startAgent(t *testing.T, cs kubernetes.Interface, name string) *agent {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if n, err = cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now}}
		_, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	lease := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: nodelifecycle.LeaseNamespace},
		Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](2), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	l, err := cs.CoordinationV1().Leases(nodelifecycle.LeaseNamespace).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{name: name}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if a.stopped.Load() {
				continue
			}
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			if got, err := cs.CoordinationV1().Leases(nodelifecycle.LeaseNamespace).Update(ctx, l, metav1.UpdateOptions{}); err == nil {
				l = got
			}
		}
	})
	t.Cleanup(func() { close(done); wg.Wait() })
	return a
}

// scheduler binds every unbound pod of ns to the node target() names.
func startScheduler(t *testing.T, cs kubernetes.Interface, ns string, target func() string) {
	c, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for c.Err() == nil {
			w, err := cs.CoreV1().Pods(ns).Watch(c, metav1.ListOptions{SendInitialEvents: ptr.To(true),
				ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, AllowWatchBookmarks: true})
			if err != nil {
				continue
			}
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type == watch.Deleted || p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
					continue
				}
				_ = cs.CoreV1().Pods(ns).Bind(c, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns},
					Target: corev1.ObjectReference{Kind: "Node", Name: target()}}, metav1.CreateOptions{})
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func hasTaint(n *corev1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == corev1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

func TestNodeLifecycle(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	const grace, eviction = 2 * time.Second, 2 * time.Second
	ctltest.Start(t, env, func(o *app.Options) {
		o.NodeMonitorGracePeriod, o.PodEvictionTimeout = grace, eviction
		o.ClusterCIDR, o.NodeCIDRMaskSize = "10.244.0.0/23", 24 // room for two nodes
	})
	a, b := startAgent(t, cs, "node-a"), startAgent(t, cs, "node-b")
	_ = b

	// Pod CIDRs: one each, distinct, inside the cluster CIDR.
	cluster := netip.MustParsePrefix("10.244.0.0/23")
	cidrs := map[string]string{}
	poll.Until(t, 10*time.Second, "pod CIDRs for both nodes", func() (bool, error) {
		for _, name := range []string{"node-a", "node-b"} {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || n.Spec.PodCIDR == "" {
				return false, err
			}
			cidrs[name] = n.Spec.PodCIDR
		}
		return true, nil
	})
	if cidrs["node-a"] == cidrs["node-b"] {
		t.Errorf("both nodes got %s", cidrs["node-a"])
	}
	for name, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil || p.Bits() != 24 || !cluster.Contains(p.Addr()) {
			t.Errorf("%s got %s, not a /24 of %s", name, c, cluster)
		}
	}

	ns := ctltest.Namespace(t, cs, "evict")
	var dead atomic.Bool
	startScheduler(t, cs, ns, func() string {
		if dead.Load() {
			return "node-b"
		}
		return "node-a"
	})
	ctltest.StartKubelet(t, cs, ns, nil)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](4), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podsOn := func(node string) (ready, total int, err error) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, 0, err
		}
		for _, p := range list.Items {
			if p.Spec.NodeName != node || p.DeletionTimestamp != nil {
				continue
			}
			total++
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready, total, nil
	}
	poll.Until(t, 30*time.Second, "4 ready pods on node-a", func() (bool, error) {
		r, _, err := podsOn("node-a")
		return r == 4, fmt.Errorf("%d ready (%v)", r, err)
	})

	// Watch pods to see them marked not ready before they are evicted.
	list, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	var markedNotReady atomic.Int32
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Spec.NodeName == "node-a" {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && c.Reason == "NodeNotReady" {
						markedNotReady.Add(1)
					}
				}
			}
		}
	}()
	defer w.Stop()
	// And the Endpoints, to see those pods leave the ready addresses.
	epw, err := cs.CoreV1().Endpoints(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer epw.Stop()
	var leftEndpoints atomic.Bool
	go func() {
		for ev := range epw.ResultChan() {
			ep, ok := ev.Object.(*corev1.Endpoints)
			if !ok {
				continue
			}
			ready, notReadyOnA := 0, 0
			for _, sub := range ep.Subsets {
				ready += len(sub.Addresses)
				for _, a := range sub.NotReadyAddresses {
					if a.NodeName != nil && *a.NodeName == "node-a" {
						notReadyOnA++
					}
				}
			}
			if ready == 0 && notReadyOnA == 4 {
				leftEndpoints.Store(true)
			}
		}
	}()

	a.stopped.Store(true)
	dead.Store(true)
	stopped := time.Now()
	poll.Until(t, grace+5*time.Second, "node-a Ready=Unknown with the unreachable taint", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReady(n) == corev1.ConditionUnknown && hasTaint(n, corev1.TaintNodeUnreachable), fmt.Errorf("ready %s taints %v", nodeReady(n), n.Spec.Taints)
	})
	unknownAfter := time.Since(stopped)
	poll.Until(t, grace+eviction+10*time.Second, "pods replaced on node-b", func() (bool, error) {
		_, onA, err := podsOn("node-a")
		if err != nil {
			return false, err
		}
		rb, _, err := podsOn("node-b")
		return onA == 0 && rb == 4, fmt.Errorf("%d left on node-a, %d ready on node-b", onA, rb)
	})
	replacedAfter := time.Since(stopped)
	t.Logf("lease stopped: Unknown after %s, pods replaced after %s (grace %s + eviction %s)", unknownAfter.Round(100*time.Millisecond),
		replacedAfter.Round(100*time.Millisecond), grace, eviction)
	// The lease was renewed up to 300ms before it stopped, checks run every
	// 200ms, and the replacements must be created, bound and made ready.
	if limit := grace + eviction + 3*time.Second; replacedAfter > limit {
		t.Errorf("pods replaced after %s, more than grace + eviction + 3s = %s", replacedAfter, limit)
	}
	if unknownAfter < grace-500*time.Millisecond {
		t.Errorf("node marked Unknown after %s, before the %s grace period", unknownAfter, grace)
	}
	if markedNotReady.Load() == 0 {
		t.Error("pods on the unreachable node were never marked not ready")
	}
	if !leftEndpoints.Load() {
		t.Error("the unreachable node's pods never moved to the Endpoints' notReadyAddresses")
	}
	nb, _ := cs.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{})
	if nodeReady(nb) != corev1.ConditionTrue || hasTaint(nb, corev1.TaintNodeUnreachable) {
		t.Errorf("healthy node-b: ready %s taints %v", nodeReady(nb), nb.Spec.Taints)
	}

	// The cluster CIDR is full: node-c waits, and gets node-a's CIDR once
	// node-a is deleted.
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "CIDRNotAvailable event", func() (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "CIDRNotAvailable" && e.InvolvedObject.Name == "node-c" {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events", len(evs.Items))
	})
	if err := cs.CoreV1().Nodes().Delete(ctx, "node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "node-c gets node-a's CIDR", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "node-c", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return n.Spec.PodCIDR == cidrs["node-a"], fmt.Errorf("node-c has %q", n.Spec.PodCIDR)
	})
}
