//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"

	"github.com/kubeish/kubeish/pkg/poll"
)

// TestRealNodeLoss: a node dies (its agent and every container killed):
// within the grace period plus the eviction timeout the Deployment runs 6
// pods on the other nodes, and the Service answers from them.
func TestRealNodeLoss(t *testing.T) {
	const grace, eviction = 10 * time.Second, 10 * time.Second
	c := newRealCluster(t, realOptions{controllerArgs: []string{
		"--node-monitor-grace-period", grace.String(), "--pod-eviction-timeout", eviction.String()}})
	ctx := ctxFor(t)
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, echoDeployment("default", "web", 6, "v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.client.CoreV1().Services("default").Create(ctx, echoService("default", "web", "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := c.waitReadyPods("default", "web", 6, "v1", 120*time.Second)
	c.waitEndpoints("default", "web", podIPs(pods), 30*time.Second)

	dead := c.nodes[2]
	var lost []string
	for _, p := range pods {
		if p.Spec.NodeName == dead.name {
			lost = append(lost, p.Name)
		}
	}
	c.killNode(dead)
	killed := time.Now()
	t.Logf("killed %s (agent and containers of %v)", dead.name, lost)

	// The bound: grace + eviction, plus the monitor period, the scheduler
	// and the new pods' start; never more than the 60 s promised.
	pods = c.waitReadyPods("default", "web", 6, "v1", 60*time.Second, dead.name)
	t.Logf("6 pods ready on the other nodes %s after the node died", time.Since(killed).Round(100*time.Millisecond))
	node, err := c.client.CoreV1().Nodes().Get(ctx, dead.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nodeReady(node) {
		t.Errorf("dead node %s still Ready: %v", dead.name, node.Status.Conditions)
	}
	var taints []string
	for _, tn := range node.Spec.Taints {
		taints = append(taints, tn.Key)
	}
	if !slices.Contains(taints, corev1.TaintNodeUnreachable) {
		t.Errorf("dead node's taints %v, want %s", taints, corev1.TaintNodeUnreachable)
	}
	c.waitEndpoints("default", "web", podIPs(pods), 10*time.Second)

	// Once the endpoints have updated, the Service answers every request,
	// from the new pods only.
	names := podNames(pods)
	clusterURL := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"
	ask := func() error {
		for _, n := range c.nodes[:2] {
			body, err := get(n.host, clusterURL)
			if err != nil {
				return err
			}
			if pod, _, err := greeting(body); err != nil || !slices.Contains(names, pod) {
				return fmt.Errorf("from %s: answered %q (%v), want one of %v", n.name, body, err, names)
			}
		}
		return nil
	}
	untilEvery(t, 100*time.Millisecond, 5*time.Second, "the Service answering from the live pods", ask)
	poll.Never(t, 3*time.Second, "the Service failing a request after the endpoints updated", ask)
}

// TestRealControlPlane: an apiserver killed with SIGKILL in the middle of
// a rollout comes back over the same etcd and the rollout completes with
// nothing lost; with two controllers and two schedulers, killing the
// leaders hands over to the standbys within 15 s.
func TestRealControlPlane(t *testing.T) {
	c := newRealCluster(t, realOptions{controllers: 2, schedulers: 2})
	t.Run("APIServerKilledMidRollout", func(t *testing.T) { testAPIServerKilledMidRollout(c.sub(t)) })
	t.Run("LeadersFailOver", func(t *testing.T) { testLeadersFailOver(c.sub(t)) })
}

func testAPIServerKilledMidRollout(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	keep, err := c.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "keep"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, echoDeployment("default", "roll", 6, "v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.client.CoreV1().Services("default").Create(ctx, echoService("default", "roll", "roll"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.waitReadyPods("default", "roll", 6, "v1", 120*time.Second)

	// A watch opened before the kill must resume after it: an informer's
	// cache of the pods ends equal to a fresh list.
	lw := cache.NewFilteredListWatchFromClient(c.watcher.CoreV1().RESTClient(), "pods", "default",
		func(o *metav1.ListOptions) { o.LabelSelector = "app=roll" })
	store, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: &corev1.Pod{},
		Handler: cache.ResourceEventHandlerFuncs{}})
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	go ctrl.RunWithContext(ictx)
	if !cache.WaitForCacheSync(ictx.Done(), ctrl.HasSynced) {
		t.Fatal("pod informer did not sync")
	}

	setImage(t, c, "default", "roll", "v2")
	// Mid-rollout: some v2 pods exist and some v1 pods still run.
	poll.UntilEvery(t, 50*time.Millisecond, 60*time.Second, "the rollout under way", func() (bool, error) {
		pods, err := c.podsOf(ctx, "default", "roll")
		if err != nil {
			return false, err
		}
		v1, v2 := 0, 0
		for _, p := range pods {
			if strings.HasSuffix(p.Spec.Containers[0].Image, ":v2") {
				v2++
			} else {
				v1++
			}
		}
		return v2 >= 1 && v1 >= 1, fmt.Errorf("%d v1 and %d v2 pods", v1, v2)
	})
	c.restartAPIServer(syscall.SIGKILL)
	restarted := time.Now()
	t.Log("apiserver killed with SIGKILL mid-rollout and started again")

	pods := c.waitReadyPods("default", "roll", 6, "v2", 120*time.Second)
	t.Logf("rollout complete %s after the restart", time.Since(restarted).Round(100*time.Millisecond))
	poll.Until(t, 30*time.Second, "deployment status complete", func() (bool, error) {
		d, err := c.client.AppsV1().Deployments("default").Get(ctx, "roll", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := d.Status
		done := s.ObservedGeneration == d.Generation && s.Replicas == 6 && s.UpdatedReplicas == 6 && s.ReadyReplicas == 6 && s.AvailableReplicas == 6
		return done, fmt.Errorf("status %+v at generation %d", s, d.Generation)
	})
	out := c.mustKctl("", "rollout", "status", "deployment", "roll")
	t.Logf("kctl rollout status: %s", strings.TrimSpace(out))
	rss, err := c.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=roll"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 2 {
		t.Errorf("%d ReplicaSets, want 2 (v1 scaled to 0, v2 at 6)", len(rss.Items))
	}
	for _, rs := range rss.Items {
		want := int32(0)
		if strings.HasSuffix(rs.Spec.Template.Spec.Containers[0].Image, ":v2") {
			want = 6
		}
		if *rs.Spec.Replicas != want {
			t.Errorf("ReplicaSet %s (%s) wants %d replicas, want %d", rs.Name, rs.Spec.Template.Spec.Containers[0].Image, *rs.Spec.Replicas, want)
		}
	}
	// Nothing lost: what existed before the kill is there unchanged.
	got, err := c.client.CoreV1().ConfigMaps("default").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil || got.UID != keep.UID || got.ResourceVersion != keep.ResourceVersion || got.Data["k"] != "v" {
		t.Errorf("configmap keep after the restart: %+v, %v; want uid %s rv %s", got, err, keep.UID, keep.ResourceVersion)
	}
	gotSvc, err := c.client.CoreV1().Services("default").Get(ctx, "roll", metav1.GetOptions{})
	if err != nil || gotSvc.Spec.ClusterIP != svc.Spec.ClusterIP {
		t.Errorf("service roll after the restart: %v, %v; want ClusterIP %s", gotSvc, err, svc.Spec.ClusterIP)
	}
	c.waitEndpoints("default", "roll", podIPs(pods), 10*time.Second)
	// The watch resumed: the informer sees exactly the pods a list sees.
	want := podNames(pods)
	poll.Until(t, 15*time.Second, "the informer opened before the kill to see the new pods", func() (bool, error) {
		var names []string
		for _, o := range store.List() {
			p := o.(*corev1.Pod)
			if podReady(p) {
				names = append(names, p.Name)
			}
		}
		sort.Strings(names)
		return strings.Join(names, ",") == strings.Join(want, ",") && len(store.List()) == len(want),
			fmt.Errorf("informer has %v (%d pods), list has %v", names, len(store.List()), want)
	})
}

// setImage sets the echo tag of a Deployment's container, retrying on
// conflicts.
func setImage(t *testing.T, c *realCluster, ns, name, tag string) {
	t.Helper()
	ctx := ctxFor(t)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = echoRef + ":" + tag
		_, err = c.client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leaseHolder returns the holder of the leader Lease kube-system/name.
func (c *realCluster) leaseHolder(ctx context.Context, name string) (string, error) {
	l, err := c.client.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", fmt.Errorf("lease %s has no holder", name)
	}
	return *l.Spec.HolderIdentity, nil
}

const (
	controllerLease = "kubeish-controller"
	schedulerLease  = "kube-scheduler"
)

func testLeadersFailOver(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	leaders := map[string]string{}
	for _, lease := range []string{controllerLease, schedulerLease} {
		h, err := c.leaseHolder(ctx, lease)
		if err != nil {
			t.Fatal(err)
		}
		if c.procs.get(h) == nil {
			t.Fatalf("lease %s held by %q, not a running component", lease, h)
		}
		leaders[lease] = h
	}
	standby := func(leader string) string {
		if strings.HasSuffix(leader, "-1") {
			return strings.TrimSuffix(leader, "-1") + "-2"
		}
		return strings.TrimSuffix(leader, "-2") + "-1"
	}
	t.Logf("leaders %v: killing them with SIGKILL", leaders)
	c.kill(leaders[controllerLease], syscall.SIGKILL)
	c.kill(leaders[schedulerLease], syscall.SIGKILL)
	killed := time.Now()
	// Work that needs both: a Deployment (the controller makes its pods)
	// whose pods must be bound (the scheduler), submitted at once.
	if _, err := c.client.AppsV1().Deployments("default").Create(ctx, echoDeployment("default", "after", 3, "v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.UntilEvery(t, 100*time.Millisecond, 15*time.Second, "standbys holding the leases", func() (bool, error) {
		var wrong []string
		for lease, leader := range leaders {
			h, err := c.leaseHolder(ctx, lease)
			if err != nil {
				return false, err
			}
			if h != standby(leader) {
				wrong = append(wrong, fmt.Sprintf("%s held by %s", lease, h))
			}
		}
		return len(wrong) == 0, fmt.Errorf("%s", strings.Join(wrong, "; "))
	})
	t.Logf("standbys lead %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	poll.UntilEvery(t, 100*time.Millisecond, 15*time.Second-time.Since(killed), "3 pods of a new Deployment created and bound", func() (bool, error) {
		pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=after",
			FieldSelector: fields.OneTermNotEqualSelector("spec.nodeName", "").String()})
		if err != nil {
			return false, err
		}
		return len(pods.Items) == 3, fmt.Errorf("%d bound pods", len(pods.Items))
	})
	t.Logf("new Deployment's pods made and bound %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	c.waitReadyPods("default", "after", 3, "v1", 60*time.Second)

	// The old leaders come back as standbys: the leases stay where they are.
	for i := 1; i <= 2; i++ {
		if leaders[controllerLease] == controllerName(i) {
			c.startController(i)
		}
		if leaders[schedulerLease] == schedulerName(i) {
			c.startScheduler(i)
		}
	}
	poll.Never(t, 3*time.Second, "a restarted old leader taking a lease back", func() error {
		for lease, leader := range leaders {
			if h, err := c.leaseHolder(ctx, lease); err != nil || h != standby(leader) {
				return fmt.Errorf("%s held by %q (%v)", lease, h, err)
			}
		}
		return nil
	})
	if d, err := c.client.AppsV1().Deployments("default").Get(ctx, "after", metav1.GetOptions{}); err != nil || d.Status.ReadyReplicas != 3 {
		t.Errorf("deployment after: %v, %v", d, err)
	}
}
