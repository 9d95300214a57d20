//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRealCluster runs the tests that leave a cluster working on one
// shared real cluster (starting one costs tens of seconds on two cores);
// the tests that break a cluster on purpose make their own. Autoscale
// runs last: its load is the one that makes the machine busy.
func TestRealCluster(t *testing.T) {
	c := newRealCluster(t, realOptions{
		// Autoscale: usage scraped and autoscalers evaluated every 2 s
		// (15 s by default) so that a scale-up and back takes seconds.
		apiserverArgs:  []string{"--metric-resolution", "2s"},
		controllerArgs: []string{"--horizontal-pod-autoscaler-sync-period", "2s"},
	})
	t.Run("DeploymentAndService", func(t *testing.T) { testDeploymentAndService(c.sub(t)) })
	t.Run("Services", func(t *testing.T) { testServices(c.sub(t)) })
	t.Run("RollingUpdate", func(t *testing.T) { testRollingUpdate(c.sub(t)) })
	t.Run("Prometheus", func(t *testing.T) { testPrometheus(c.sub(t)) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(c.sub(t)) })
	t.Run("Security", func(t *testing.T) { testSecurity(c.sub(t)) })
	t.Run("Autoscale", func(t *testing.T) { testAutoscale(c.sub(t)) })
}

// webManifest is what a user applies: a Deployment of 6 echo pods and a
// Service over them.
const webManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: echo
        image: kubeish.local/echo:v1
        imagePullPolicy: Never
        ports:
        - {name: http, containerPort: 8080}
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
        resources:
          requests: {cpu: 50m, memory: 32Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
`

// testDeploymentAndService: a Deployment of 6 and a Service applied with
// kctl run spread over the 3 nodes; the Service answers on its ClusterIP
// from every node and from a pod on every node, and by its DNS names from
// inside pods; kctl logs shows a pod's output.
func testDeploymentAndService(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	file := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(file, []byte(webManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	t.Logf("kctl apply: %s", strings.TrimSpace(c.mustKctl("", "apply", "-f", file)))
	pods := c.waitReadyPods("default", "web", 6, "v1", 120*time.Second)
	t.Logf("6 pods ready in %s", time.Since(start).Round(100*time.Millisecond))
	byNode := map[string][]string{}
	for _, p := range pods {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p.Name)
	}
	for _, n := range c.nodes {
		if len(byNode[n.name]) != 2 {
			t.Errorf("6 replicas on 3 equal nodes: %s runs %v, want 2 (all: %v)", n.name, byNode[n.name], byNode)
		}
	}
	c.waitEndpoints("default", "web", podIPs(pods), 30*time.Second)

	// kctl logs: the pod's output, through the apiserver and its node.
	p := pods[0]
	untilEvery(t, 200*time.Millisecond, 10*time.Second, "kctl logs "+p.Name, func() error {
		out, errOut, err := c.kctl("", "logs", p.Name)
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		if want := fmt.Sprintf("echo: starting as pod %q", p.Name); !strings.Contains(out, want) {
			return fmt.Errorf("logs %q lack %q", out, want)
		}
		return nil
	})

	svc, err := c.client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clusterURL := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"
	names := podNames(pods)
	answered := func(body string) error {
		pod, version, err := greeting(body)
		if err != nil {
			return err
		}
		if !slices.Contains(names, pod) || version != "v1" {
			return fmt.Errorf("answered by %s (%s), not one of %v (v1)", pod, version, names)
		}
		return nil
	}
	// From every node host, and from a pod on every node.
	for _, n := range c.nodes {
		untilEvery(t, 100*time.Millisecond, 15*time.Second, "ClusterIP "+svc.Spec.ClusterIP+" from "+n.name, func() error {
			body, err := get(n.host, clusterURL)
			if err != nil {
				return err
			}
			return answered(body)
		})
	}
	for _, p := range pods {
		if len(byNode[p.Spec.NodeName]) == 0 {
			continue
		}
		delete(byNode, p.Spec.NodeName) // one pod per node
		n := c.node(p.Spec.NodeName)
		for _, u := range []string{clusterURL, "http://web.default.svc.cluster.local/", "http://web/"} {
			untilEvery(t, 100*time.Millisecond, 15*time.Second, fmt.Sprintf("%s from pod %s on %s", u, p.Name, n.name), func() error {
				body, err := fetchFrom(n.host, p.Status.PodIP, u)
				if err != nil {
					return err
				}
				return answered(body)
			})
		}
	}
}
