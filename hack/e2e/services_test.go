//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// testServices is issue 7's promises on real nodes: a Service over pods on
// three nodes balances over the ready ones, drops a pod that turns not
// ready within 2 s, answers on its node port on every node, lets a pod
// reach itself through it (hairpin), follows scaling, rejects connections
// when it has no endpoints, and stops answering once deleted; pods reach
// each other across nodes by pod IP.
func testServices(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	const ns = "svc"
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, echoDeployment(ns, "lb", 3, "v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lbSvc := echoService(ns, "lb", "lb")
	lbSvc.Spec.Type = corev1.ServiceTypeNodePort
	lbSvc, err := c.client.CoreV1().Services(ns).Create(ctx, lbSvc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A single pod behind its own Service, for hairpin.
	if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, echoDeployment(ns, "solo", 1, "v1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	soloSvc, err := c.client.CoreV1().Services(ns).Create(ctx, echoService(ns, "solo", "solo"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := c.waitReadyPods(ns, "lb", 3, "v1", 90*time.Second)
	solo := c.waitReadyPods(ns, "solo", 1, "v1", 90*time.Second)[0]
	c.waitEndpoints(ns, "lb", podIPs(pods), 30*time.Second)
	c.waitEndpoints(ns, "solo", []string{solo.Status.PodIP}, 30*time.Second)
	nodesOf := map[string]bool{}
	for _, p := range pods {
		nodesOf[p.Spec.NodeName] = true
	}
	if len(nodesOf) != 3 {
		t.Errorf("3 replicas on %d nodes (%v), want one per node", len(nodesOf), nodesOf)
	}
	clusterIP := net.JoinHostPort(lbSvc.Spec.ClusterIP, "80")
	clusterURL := "http://" + clusterIP + "/"

	// ask makes n requests through the ClusterIP, from the node hosts in
	// turn, and counts the answers by pod.
	ask := func(n int) (map[string]int, error) {
		by := map[string]int{}
		for i := 0; i < n; i++ {
			node := c.nodes[i%len(c.nodes)]
			body, err := get(node.host, clusterURL)
			if err != nil {
				return by, fmt.Errorf("request %d from %s: %w", i, node.name, err)
			}
			pod, _, err := greeting(body)
			if err != nil {
				return by, err
			}
			by[pod]++
		}
		return by, nil
	}
	// answeredBy fails unless every answer came from one of names and, with
	// all, every one of names answered.
	answeredBy := func(by map[string]int, names []string, all bool) error {
		for pod := range by {
			if !slices.Contains(names, pod) {
				return fmt.Errorf("answered by %s, not one of %v (answers %v)", pod, names, by)
			}
		}
		if all && len(by) != len(names) {
			return fmt.Errorf("answers %v, want all of %v", by, names)
		}
		return nil
	}

	t.Run("ReachableFromNodesAndPods", func(t *testing.T) {
		c := c.sub(t)
		for _, n := range c.nodes {
			untilEvery(t, 100*time.Millisecond, 15*time.Second, "ClusterIP from "+n.name, func() error {
				body, err := get(n.host, clusterURL)
				if err != nil {
					return err
				}
				return answeredBy(map[string]int{podOf(greeting(body)): 1}, podNames(pods), false)
			})
		}
		for _, p := range pods {
			n := c.node(p.Spec.NodeName)
			for _, u := range []string{clusterURL, "http://lb/", "http://lb.svc/", "http://lb.svc.svc.cluster.local/"} {
				untilEvery(t, 100*time.Millisecond, 15*time.Second, fmt.Sprintf("%s from pod %s on %s", u, p.Name, n.name), func() error {
					body, err := fetchFrom(n.host, p.Status.PodIP, u)
					if err != nil {
						return err
					}
					return answeredBy(map[string]int{podOf(greeting(body)): 1}, podNames(pods), false)
				})
			}
		}
	})

	t.Run("PodToPodAcrossNodes", func(t *testing.T) {
		c := c.sub(t)
		for _, from := range pods {
			for _, to := range pods {
				if from.Spec.NodeName == to.Spec.NodeName {
					continue
				}
				u := "http://" + net.JoinHostPort(to.Status.PodIP, "8080") + "/"
				untilEvery(t, 100*time.Millisecond, 10*time.Second, fmt.Sprintf("pod %s (%s) → pod %s (%s) by IP", from.Name, from.Spec.NodeName, to.Name, to.Spec.NodeName), func() error {
					body, err := fetchFrom(c.node(from.Spec.NodeName).host, from.Status.PodIP, u)
					if err != nil {
						return err
					}
					if pod, _, _ := greeting(body); pod != to.Name {
						return fmt.Errorf("answered %q", body)
					}
					return nil
				})
			}
		}
	})

	t.Run("Balanced", func(t *testing.T) {
		by, err := ask(300)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("300 requests through %s: %v", clusterIP, by)
		if err := answeredBy(by, podNames(pods), true); err != nil {
			t.Error(err)
		}
		for pod, n := range by {
			if n > 150 {
				t.Errorf("%s answered %d of 300 requests, more than half", pod, n)
			}
		}
	})

	t.Run("NodePort", func(t *testing.T) {
		c := c.sub(t)
		port := lbSvc.Spec.Ports[0].NodePort
		if port == 0 {
			t.Fatalf("NodePort service without a node port: %+v", lbSvc.Spec.Ports)
		}
		// From outside the pod network (the control-plane host) and from
		// another node, to every node's address.
		for _, from := range []*testhost.Host{c.cp, c.nodes[0].host} {
			for _, n := range c.nodes {
				u := fmt.Sprintf("http://%s/", net.JoinHostPort(n.ip, fmt.Sprint(port)))
				untilEvery(t, 100*time.Millisecond, 10*time.Second, fmt.Sprintf("node port %s from %s", u, from.Name), func() error {
					body, err := get(from, u)
					if err != nil {
						return err
					}
					return answeredBy(map[string]int{podOf(greeting(body)): 1}, podNames(pods), false)
				})
			}
		}
	})

	t.Run("Hairpin", func(t *testing.T) {
		c := c.sub(t)
		u := "http://" + net.JoinHostPort(soloSvc.Spec.ClusterIP, "80") + "/"
		untilEvery(t, 100*time.Millisecond, 10*time.Second, "pod "+solo.Name+" reaching itself through its Service", func() error {
			body, err := fetchFrom(c.node(solo.Spec.NodeName).host, solo.Status.PodIP, u)
			if err != nil {
				return err
			}
			if pod, _, _ := greeting(body); pod != solo.Name {
				return fmt.Errorf("answered %q", body)
			}
			return nil
		})
	})

	t.Run("NotReadyGetsNoTraffic", func(t *testing.T) {
		c := c.sub(t)
		sick := pods[0]
		var rest []string
		for _, p := range pods[1:] {
			rest = append(rest, p.Name)
		}
		if _, err := get(c.node(sick.Spec.NodeName).host, "http://"+net.JoinHostPort(sick.Status.PodIP, "8080")+"/unready"); err != nil {
			t.Fatal(err)
		}
		asked := time.Now()
		poll.UntilEvery(t, 50*time.Millisecond, 10*time.Second, sick.Name+" not Ready in the API", func() (bool, error) {
			p, err := c.client.CoreV1().Pods(ns).Get(ctx, sick.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return !podReady(p), nil
		})
		notReady := time.Now()
		t.Logf("%s not Ready %s after its /healthz began to fail", sick.Name, notReady.Sub(asked).Round(10*time.Millisecond))
		// Within 2 s of turning not ready, no request reaches it.
		untilEvery(t, 10*time.Millisecond, 2*time.Second, "no traffic to the not-ready "+sick.Name, func() error {
			by, err := ask(9)
			if err != nil {
				return err
			}
			return answeredBy(by, rest, false)
		})
		t.Logf("%s out of rotation %s after it turned not ready", sick.Name, time.Since(notReady).Round(10*time.Millisecond))
		poll.Never(t, 2*time.Second, "a request reaching the not-ready "+sick.Name, func() error {
			by, err := ask(3)
			if err != nil {
				return err
			}
			return answeredBy(by, rest, false)
		})
		// Ready again: back in rotation.
		if _, err := get(c.node(sick.Spec.NodeName).host, "http://"+net.JoinHostPort(sick.Status.PodIP, "8080")+"/ready"); err != nil {
			t.Fatal(err)
		}
		untilEvery(t, 50*time.Millisecond, 10*time.Second, sick.Name+" back in rotation", func() error {
			by, err := ask(30)
			if err != nil {
				return err
			}
			return answeredBy(by, podNames(pods), true)
		})
	})

	t.Run("Scaling", func(t *testing.T) {
		c := c.sub(t)
		for _, replicas := range []int{5, 2} {
			scaled := time.Now()
			c.mustKctl("", "scale", "deployment", "lb", "-n", ns, "--replicas", fmt.Sprint(replicas))
			now := c.waitReadyPods(ns, "lb", replicas, "v1", 60*time.Second)
			c.waitEndpoints(ns, "lb", podIPs(now), 30*time.Second)
			updated := time.Now()
			untilEvery(t, 10*time.Millisecond, 3*time.Second, fmt.Sprintf("the Service answering from exactly %v", podNames(now)), func() error {
				by, err := ask(12 * replicas)
				if err != nil {
					return err
				}
				return answeredBy(by, podNames(now), true)
			})
			t.Logf("scaled to %d: the Service answers from the new set %s after the endpoints changed (%s after kctl scale)",
				replicas, time.Since(updated).Round(10*time.Millisecond), time.Since(scaled).Round(100*time.Millisecond))
		}
	})

	t.Run("NoEndpointsRejects", func(t *testing.T) {
		c := c.sub(t)
		c.mustKctl("", "scale", "deployment", "lb", "-n", ns, "--replicas", "0")
		c.waitReadyPods(ns, "lb", 0, "", 60*time.Second)
		c.waitEndpoints(ns, "lb", nil, 30*time.Second)
		for _, n := range c.nodes {
			untilEvery(t, 50*time.Millisecond, 3*time.Second, "connection refused by "+clusterIP+" without endpoints, from "+n.name, func() error {
				return dialRefused(n.host, clusterIP)
			})
		}
	})

	t.Run("DeletedServiceStopsAnswering", func(t *testing.T) {
		c := c.sub(t)
		u := "http://" + net.JoinHostPort(soloSvc.Spec.ClusterIP, "80") + "/"
		if _, err := get(c.nodes[0].host, u); err != nil {
			t.Fatalf("solo before its deletion: %v", err)
		}
		if err := c.client.CoreV1().Services(ns).Delete(ctx, "solo", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort(soloSvc.Spec.ClusterIP, "80")
		for _, n := range c.nodes {
			untilEvery(t, 50*time.Millisecond, 3*time.Second, "connection refused by the deleted Service's "+addr+" from "+n.name, func() error {
				return dialRefused(n.host, addr)
			})
		}
	})
}

// podOf returns greeting's pod, or "" when the answer was no greeting.
func podOf(pod, _ string, err error) string {
	if err != nil {
		return ""
	}
	return pod
}
