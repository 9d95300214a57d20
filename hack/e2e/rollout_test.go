//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// rollManifest is the Deployment of the rolling-update test: readiness on
// /healthz, and a rollout that adds a pod before it takes one away.
const rollManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: roll, namespace: roll}
spec:
  replicas: 6
  selector:
    matchLabels: {app: roll}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: roll}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: echo
        image: kubeish.local/echo:%s
        imagePullPolicy: Never
        # Serve 2 s before SIGTERM: the pod leaves the Endpoints at once,
        # but every node's proxy drops it 50-150 ms later (kube-proxy has
        # the same window), so the app must not stop at once: Kubernetes'
        # preStop sleep, with no binary needed in the image.
        lifecycle:
          preStop:
            sleep: {seconds: 2}
        ports:
        - {name: http, containerPort: 8080}
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: roll, namespace: roll}
spec:
  selector: {app: roll}
  ports:
  - {name: http, port: 80, targetPort: http}
`

// load sends requests through a Service without pause from several
// places (node hosts, and a pod through /fetch) and tallies the answers.
type load struct {
	mu       sync.Mutex
	ok       map[string]int // by version
	failures []string
	failed   int
	last     map[string]string // the last version each client saw
}

func (l *load) record(client, body string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		var version string
		if _, version, err = greeting(body); err == nil {
			l.ok[version]++
			l.last[client] = version
			return
		}
	}
	l.failed++
	if len(l.failures) < 20 {
		l.failures = append(l.failures, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), client, err))
	}
}

func (l *load) snapshot() (map[string]int, int, []string, map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, last := map[string]int{}, map[string]string{}
	for k, v := range l.ok {
		ok[k] = v
	}
	for k, v := range l.last {
		last[k] = v
	}
	return ok, l.failed, append([]string(nil), l.failures...), last
}

// testRollingUpdate: a rolling update to a new image tag, applied with
// kctl under continuous requests through the Service, fails none of them.
func testRollingUpdate(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	c.mustKctl("apiVersion: v1\nkind: Namespace\nmetadata: {name: roll}\n", "apply", "-f", "-")
	file := filepath.Join(t.TempDir(), "roll.yaml")
	apply := func(tag string) {
		if err := os.WriteFile(file, []byte(fmt.Sprintf(rollManifest, tag)), 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustKctl("", "apply", "-f", file)
	}
	apply("v1")
	// A client pod outside the Deployment, for requests from the pod network.
	client := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client", Labels: map[string]string{"app": "client"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{echoContainer("v1")}}}
	if _, err := c.client.CoreV1().Pods("roll").Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := c.waitReadyPods("roll", "roll", 6, "v1", 90*time.Second)
	clientPod := c.waitReadyPods("roll", "client", 1, "v1", 60*time.Second)[0]
	c.waitEndpoints("roll", "roll", podIPs(pods), 30*time.Second)
	svc, err := c.client.CoreV1().Services("roll").Get(ctx, "roll", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"
	// Every place reaches the Service before the load starts counting.
	for _, n := range c.nodes {
		untilEvery(t, 100*time.Millisecond, 10*time.Second, "roll from "+n.name, func() error { _, err := get(n.host, u); return err })
	}

	tl := c.watchTimeline(ctx, "roll", "app=roll", "roll")
	l := &load{ok: map[string]int{}, last: map[string]string{}}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(h *testhost.Host, name string) {
			defer wg.Done()
			for lctx.Err() == nil {
				body, err := get(h, u)
				l.record(name, body, err)
			}
		}(n.host, n.name)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		h := c.node(clientPod.Spec.NodeName).host
		for lctx.Err() == nil {
			body, err := fetchFrom(h, clientPod.Status.PodIP, u)
			l.record("pod "+clientPod.Name, body, err)
		}
	}()
	stopLoad := func() {
		stop()
		wg.Wait()
	}
	defer stopLoad()

	noFailures := func() error {
		ok, failed, failures, _ := l.snapshot()
		if failed > 0 {
			return fmt.Errorf("%d of %d requests failed: %s", failed, failed+ok["v1"]+ok["v2"], strings.Join(failures, "; "))
		}
		return nil
	}
	poll.Never(t, 2*time.Second, "a failed request before the rollout", noFailures)
	tl.add("rollout to v2 applied")
	started := time.Now()
	apply("v2")
	c.waitReadyPods("roll", "roll", 6, "v2", 120*time.Second)
	c.mustKctl("", "rollout", "status", "deployment", "roll", "-n", "roll")
	tl.add("rollout complete")
	t.Logf("rolled out to v2 in %s", time.Since(started).Round(100*time.Millisecond))
	// After the rollout every client gets v2, and still nothing fails.
	untilEvery(t, 50*time.Millisecond, 10*time.Second, "every client answered by v2", func() error {
		_, _, _, last := l.snapshot()
		if len(last) != len(c.nodes)+1 {
			return fmt.Errorf("answers seen by %v", last)
		}
		for client, v := range last {
			if v != "v2" {
				return fmt.Errorf("%s last got %s", client, v)
			}
		}
		return nil
	})
	stopLoad()
	ok, failed, failures, _ := l.snapshot()
	t.Logf("requests through the Service during the rollout: %v answered, %d failed", ok, failed)
	if failed > 0 {
		t.Errorf("%d requests failed during the rolling update, want none; first:\n  %s\ntimeline of pods and endpoints:\n  %s",
			failed, strings.Join(failures, "\n  "), strings.Join(tl.lines(), "\n  "))
	}
	if ok["v1"] == 0 || ok["v2"] == 0 {
		t.Errorf("answers by version %v: want both v1 and v2", ok)
	}
}

// timeline records, with times, what happens to a set of pods and their
// Service's Endpoints, for failure messages that show why a request
// failed.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	items []string
}

func (tl *timeline) add(format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.items = append(tl.items, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

func (tl *timeline) lines() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.items...)
}

// watchTimeline watches the pods matching selector and the Endpoints svc
// in ns until ctx ends.
func (c *realCluster) watchTimeline(ctx context.Context, ns, selector, svc string) *timeline {
	tl := &timeline{}
	pw, err := c.watcher.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		c.t.Fatal(err)
	}
	ew, err := c.watcher.CoreV1().Endpoints(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + svc})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(pw.Stop)
	c.t.Cleanup(ew.Stop)
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			state := podSummary(p)
			if podReady(p) {
				state += " ready"
			}
			tl.add("pod %s %s ip=%s node=%s: %s", ev.Type, p.Name, p.Status.PodIP, p.Spec.NodeName, state)
		}
	}()
	go func() {
		for ev := range ew.ResultChan() {
			ep, ok := ev.Object.(*corev1.Endpoints)
			if !ok {
				continue
			}
			var ready, notReady []string
			for _, s := range ep.Subsets {
				for _, a := range s.Addresses {
					ready = append(ready, a.IP)
				}
				for _, a := range s.NotReadyAddresses {
					notReady = append(notReady, a.IP)
				}
			}
			tl.add("endpoints %s ready=%v notReady=%v", ev.Type, ready, notReady)
		}
	}()
	return tl
}
