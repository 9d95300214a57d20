//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/poll"
)

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "kubeish/echo:v1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
				}}},
			},
		},
	}
}

func service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

// scaleDeployment sets a Deployment's replicas through the scale
// subresource, again on a conflict (the controller writes the Deployment's
// status meanwhile, which changes the resourceVersion the scale carries).
func scaleDeployment(t *testing.T, cs kubernetes.Interface, name string, replicas int32) {
	t.Helper()
	ctx := ctxFor(t)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := cs.AppsV1().Deployments("default").GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = replicas
		_, err = cs.AppsV1().Deployments("default").UpdateScale(ctx, name, scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runningPods returns the Running, Ready, not deleted pods of app by node.
func runningPods(ctx context.Context, cs kubernetes.Interface, app string) (map[string]int, int, error) {
	list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, 0, err
	}
	byNode, n := map[string]int{}, 0
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
			byNode[p.Spec.NodeName]++
			n++
		}
	}
	return byNode, n, nil
}

// waitRunning waits until exactly want pods of app run, no other pods of
// app exist (no duplicates, nothing half-deleted), and none is on one of
// the avoid nodes.
func waitRunning(t *testing.T, cs kubernetes.Interface, app string, want int, within time.Duration, avoid ...string) map[string]int {
	t.Helper()
	ctx := ctxFor(t)
	var byNode map[string]int
	poll.Until(t, within, fmt.Sprintf("%d running pods of %s", want, app), func() (bool, error) {
		all, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err
		}
		var n int
		if byNode, n, err = runningPods(ctx, cs, app); err != nil {
			return false, err
		}
		if n != want || len(all.Items) != want {
			return false, fmt.Errorf("%d running of %d pods, by node %v", n, len(all.Items), byNode)
		}
		for _, p := range all.Items {
			if slices.Contains(avoid, p.Spec.NodeName) {
				return false, fmt.Errorf("pod %s still on %s, by node %v", p.Name, p.Spec.NodeName, byNode)
			}
		}
		return true, nil
	})
	return byNode
}

// TestDeploymentConverges: a Deployment and its Service, applied through
// the API, become Running pods spread over the nodes and Endpoints with
// their addresses; scaling and deleting converge too.
func TestDeploymentConverges(t *testing.T) {
	c := newCluster(t)
	ctx := ctxFor(t)
	for i := 1; i <= 3; i++ {
		startFakeNode(t, c.client, fmt.Sprintf("node-%d", i))
	}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, deployment("web", 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, service("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	byNode := waitRunning(t, c.client, "web", 6, 60*time.Second)
	for node, n := range byNode {
		if n != 2 {
			t.Errorf("6 replicas on 3 equal nodes: %s has %d (%v), want 2 each", node, n, byNode)
		}
	}
	poll.Until(t, 30*time.Second, "6 ready endpoints on port 8080", func() (bool, error) {
		ep, err := c.client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 6 || ep.Subsets[0].Ports[0].Port != 8080 {
			return false, fmt.Errorf("endpoints %+v", ep.Subsets)
		}
		return true, nil
	})

	scaleDeployment(t, c.client, "web", 2)
	waitRunning(t, c.client, "web", 2, 60*time.Second)
	poll.Until(t, 30*time.Second, "deployment status at 2", func() (bool, error) {
		d, err := c.client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if d.Status.ObservedGeneration != d.Generation || d.Status.ReadyReplicas != 2 || d.Status.AvailableReplicas != 2 {
			return false, fmt.Errorf("status %+v at generation %d", d.Status, d.Generation)
		}
		return true, nil
	})

	if err := c.client.AppsV1().Deployments("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c.client, "web", 0, 60*time.Second)
	poll.Until(t, 30*time.Second, "replicasets removed", func() (bool, error) {
		rs, err := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		if len(rs.Items) != 0 {
			return false, fmt.Errorf("%d replicasets left", len(rs.Items))
		}
		return true, nil
	})
}

// TestNodeLossHeals: when a node stops heartbeating, its pods are
// replaced on the other nodes within the grace period plus the eviction
// timeout, and the Service's Endpoints drop them.
func TestNodeLossHeals(t *testing.T) {
	grace, eviction := 4*time.Second, 4*time.Second
	c := newCluster(t, "--node-monitor-grace-period", grace.String(), "--pod-eviction-timeout", eviction.String())
	ctx := ctxFor(t)
	var nodes []*fakeNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, startFakeNode(t, c.client, fmt.Sprintf("node-%d", i)))
	}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, deployment("web", 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.CoreV1().Services("default").Create(ctx, service("web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c.client, "web", 6, 60*time.Second)

	dead := nodes[0]
	dead.paused.Store(true)
	stopped := time.Now()
	// Grace + eviction, plus the monitor period, the scheduler and the
	// fake nodes' reporting: a generous bound that still fails a
	// controller that never evicts.
	waitRunning(t, c.client, "web", 6, grace+eviction+30*time.Second, dead.name)
	t.Logf("pods replaced %s after the node stopped", time.Since(stopped).Round(100*time.Millisecond))
	node, err := c.client.CoreV1().Nodes().Get(ctx, dead.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var taints []string
	for _, tn := range node.Spec.Taints {
		taints = append(taints, tn.Key)
	}
	sort.Strings(taints)
	if !slices.Contains(taints, corev1.TaintNodeUnreachable) {
		t.Errorf("dead node taints %v, want %s", taints, corev1.TaintNodeUnreachable)
	}
	poll.Until(t, 30*time.Second, "endpoints without the dead node's pods", func() (bool, error) {
		ep, err := c.client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				if a.NodeName != nil && *a.NodeName == dead.name {
					return false, fmt.Errorf("address %s on %s still ready", a.IP, dead.name)
				}
				n++
			}
		}
		if n != 6 {
			return false, fmt.Errorf("%d ready addresses", n)
		}
		return true, nil
	})
}

// TestControlPlaneRestarts: SIGKILL of the controller and scheduler, and
// a restart of the apiserver over the same etcd data, lose nothing: the
// components reconnect, and work submitted meanwhile converges with no
// duplicate pods.
func TestControlPlaneRestarts(t *testing.T) {
	c := newCluster(t)
	ctx := ctxFor(t)
	for i := 1; i <= 2; i++ {
		startFakeNode(t, c.client, fmt.Sprintf("node-%d", i))
	}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, deployment("web", 4), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c.client, "web", 4, 60*time.Second)

	c.restart("controller", syscall.SIGKILL)
	c.restart("scheduler", syscall.SIGKILL)
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, deployment("api", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The old leader's lease must expire first (4 s in these tests).
	waitRunning(t, c.client, "api", 3, 60*time.Second)
	waitRunning(t, c.client, "web", 4, 10*time.Second)

	c.restart("apiserver", syscall.SIGTERM)
	scaleDeployment(t, c.client, "web", 6)
	waitRunning(t, c.client, "web", 6, 60*time.Second)
	waitRunning(t, c.client, "api", 3, 10*time.Second)
}
