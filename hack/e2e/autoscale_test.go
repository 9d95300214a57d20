//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// autoscaleNS holds the autoscaling test's objects; deleting it cleans up.
const autoscaleNS = "autoscale"

// scaleDownWindow is the HPA's behavior.scaleDown.stabilizationWindowSeconds
// in the test (Kubernetes' default is 300 s, manifests/hpa.yaml's 60 s).
const scaleDownWindow = 10 * time.Second

// burnerManifest is manifests/hpa.yaml with the e2e image, in its own
// namespace, between 1 and 4 replicas and with a 10 s scale-down window.
var burnerManifest = fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
  namespace: %[1]s
  labels: {app: burner}
spec:
  replicas: 1
  selector:
    matchLabels: {app: burner}
  template:
    metadata:
      labels: {app: burner}
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
        # Utilization is measured against the request.
        resources:
          requests: {cpu: 100m, memory: 32Mi}
          limits: {memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: burner, namespace: %[1]s}
spec:
  selector: {app: burner}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burner, namespace: %[1]s}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burner}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: %[2]d
`, autoscaleNS, int(scaleDownWindow/time.Second))

// Bounds of the load: burnClients requests at a time (one per node host),
// each keeping a core busy burnMillis, at most burnRequests in all and
// never longer than burnFor.
const (
	burnMillis   = 200
	burnRequests = 600
	burnFor      = 60 * time.Second
)

// testAutoscale is issue 11's promise on real containerd: the pod's usage
// read from its cgroup reaches `kctl top`; load on the Service makes the
// HorizontalPodAutoscaler scale the Deployment up, and once the load stops
// it scales it back to its minimum after the scale-down stabilization
// window, with conditions and a SuccessfulRescale Event each way.
func testAutoscale(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	file := filepath.Join(t.TempDir(), "burner.yaml")
	if err := os.WriteFile(file, []byte(burnerManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, the namespace goes (the end of the test waits
	// until it is gone; this is for failures).
	t.Cleanup(func() {
		err := c.client.CoreV1().Namespaces().Delete(context.Background(), autoscaleNS, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("deleting namespace %s: %v", autoscaleNS, err)
		}
	})
	t.Logf("kctl apply: %s", strings.Join(strings.Fields(c.mustKctl("", "apply", "-f", file)), " "))
	pod := c.waitReadyPods(autoscaleNS, "burner", 1, "v1", 60*time.Second)[0]
	c.waitEndpoints(autoscaleNS, "burner", []string{pod.Status.PodIP}, 30*time.Second)
	hpas := c.client.AutoscalingV2().HorizontalPodAutoscalers(autoscaleNS)

	// The metrics pipeline on real cgroups: the pod's usage, scraped from
	// its node's /stats/summary, shows in `kctl top pods`.
	start := time.Now()
	var top string
	untilEvery(t, 250*time.Millisecond, 30*time.Second, "kctl top pods showing "+pod.Name, func() error {
		out, errOut, err := c.kctl("", "top", "pods", "-n", autoscaleNS, "-l", "app=burner", "--no-headers")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		top = out
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != pod.Name {
				continue
			}
			cpu, err := resource.ParseQuantity(f[1])
			if err != nil {
				return fmt.Errorf("cpu %q: %v", f[1], err)
			}
			mem, err := resource.ParseQuantity(f[2])
			if err != nil {
				return fmt.Errorf("memory %q: %v", f[2], err)
			}
			if cpu.Sign() < 0 || mem.Sign() <= 0 {
				return fmt.Errorf("implausible usage: %q", line)
			}
			return nil
		}
		return fmt.Errorf("no row for %s in %q", pod.Name, out)
	})
	t.Logf("kctl top pods after %s: %s", time.Since(start).Round(100*time.Millisecond), strings.Join(strings.Fields(top), " "))
	// The autoscaler has read it too, and holds the Deployment at 1.
	untilEvery(t, 250*time.Millisecond, 30*time.Second, "the HPA measuring the idle pod", func() error {
		h, err := hpas.Get(ctx, "burner", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if utilization(h) == nil {
			return fmt.Errorf("no cpu utilization in the status yet: %s", hpaSummary(h))
		}
		if !hpaCondition(h, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound") {
			return fmt.Errorf("not ScalingActive: %s", hpaSummary(h))
		}
		return nil
	})
	if r := c.deploymentReplicas(ctx, "burner"); r != 1 {
		t.Fatalf("burner has %d replicas before any load, want 1", r)
	}
	t.Logf("kctl get hpa (idle): %s", strings.Join(strings.Fields(c.mustKctl("", "get", "hpa", "burner", "-n", autoscaleNS)), " "))

	svc, err := c.client.CoreV1().Services(autoscaleNS).Get(ctx, "burner", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("http://%s/burn?ms=%d", net.JoinHostPort(svc.Spec.ClusterIP, "80"), burnMillis)
	for _, n := range c.nodes {
		untilEvery(t, 100*time.Millisecond, 10*time.Second, "burner's ClusterIP from "+n.name, func() error {
			_, err := get(n.host, "http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/")
			return err
		})
	}

	// Load until the autoscaler scales up (bounded in count and time).
	l := startBurn(ctx, c.nodes, u)
	defer l.stop()
	var maxUtil int32
	var up int32
	poll.UntilEvery(t, 200*time.Millisecond, burnFor, "the HPA scaling burner up under load", func() (bool, error) {
		if h, err := hpas.Get(ctx, "burner", metav1.GetOptions{}); err == nil {
			if util := utilization(h); util != nil {
				maxUtil = max(maxUtil, *util)
			}
		}
		if up = c.deploymentReplicas(ctx, "burner"); up > 1 {
			return true, nil
		}
		sent, ok, failed, _ := l.counts()
		if l.done() {
			return false, fmt.Errorf("the load ended (%d requests sent, %d answered, %d failed) with burner at %d replicas, max utilization seen %d%%", sent, ok, failed, up, maxUtil)
		}
		return false, fmt.Errorf("%d replicas; %d requests answered; max utilization seen %d%%", up, ok, maxUtil)
	})
	scaledUp := time.Now()
	tookUp := scaledUp.Sub(l.started)
	top, _, _ = c.kctl("", "top", "pods", "-n", autoscaleNS, "-l", "app=burner", "--no-headers")
	l.stop()
	stopped := time.Now()
	sent, ok, failed, failures := l.counts()
	t.Logf("scaled up to %d replicas %s after the load started (max utilization seen %d%% of the request); kctl top pods: %s",
		up, tookUp.Round(100*time.Millisecond), maxUtil, strings.Join(strings.Fields(top), " "))
	t.Logf("load: %d clients, %d requests of /burn?ms=%d sent, %d answered, %d failed %v", len(c.nodes), sent, burnMillis, ok, failed, failures)
	if ok == 0 {
		t.Errorf("no request of the load was answered")
	}
	if maxUtil <= 50 {
		t.Errorf("the HPA's status never showed utilization above the 50%% target (max %d%%)", maxUtil)
	}
	h, err := hpas.Get(ctx, "burner", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HPA after the scale-up: %s", hpaSummary(h))
	for _, want := range []struct {
		typ    autoscalingv2.HorizontalPodAutoscalerConditionType
		status corev1.ConditionStatus
		reason string
	}{
		{autoscalingv2.AbleToScale, corev1.ConditionTrue, ""},
		{autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound"},
	} {
		if !hpaCondition(h, want.typ, want.status, want.reason) {
			t.Errorf("after the scale-up, want condition %s=%s %s: %s", want.typ, want.status, want.reason, hpaSummary(h))
		}
	}
	if h.Status.LastScaleTime == nil {
		t.Errorf("after the scale-up, no lastScaleTime: %s", hpaSummary(h))
	}

	// The load stopped: back to 1 after the stabilization window. Meanwhile
	// the Deployment made the pods the autoscaler asked for.
	var down, maxPods, maxReady int32
	poll.UntilEvery(t, 200*time.Millisecond, scaleDownWindow+40*time.Second, "the HPA scaling burner back to 1 once the load stopped", func() (bool, error) {
		d, err := c.client.AppsV1().Deployments(autoscaleNS).Get(ctx, "burner", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		maxPods, maxReady = max(maxPods, d.Status.Replicas), max(maxReady, d.Status.ReadyReplicas)
		if down = ptr.Deref(d.Spec.Replicas, 1); down == 1 {
			return true, nil
		}
		h, err := hpas.Get(ctx, "burner", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return false, fmt.Errorf("%d replicas; %s", down, hpaSummary(h))
	})
	scaledDown := time.Now()
	t.Logf("scaled back to 1 replica %s after the load stopped (%s after the scale-up; window %s); in between up to %d pods, %d of them ready",
		scaledDown.Sub(stopped).Round(100*time.Millisecond), scaledDown.Sub(scaledUp).Round(100*time.Millisecond), scaleDownWindow, maxPods, maxReady)
	if maxPods < up {
		t.Errorf("the Deployment scaled to %d had at most %d pods before the scale-down", up, maxPods)
	}
	// The highest recommendation within the window wins, and the last
	// high one came no earlier than the scale-up: it may not have been
	// undone sooner (less the 200 ms the polls may lag).
	if d := scaledDown.Sub(scaledUp); d < scaleDownWindow-time.Second {
		t.Errorf("scaled down %s after scaling up, within the %s stabilization window", d.Round(100*time.Millisecond), scaleDownWindow)
	}
	c.waitReadyPods(autoscaleNS, "burner", 1, "v1", 30*time.Second)

	untilEvery(t, 250*time.Millisecond, 10*time.Second, "the HPA's status at 1 replica", func() error {
		h, err = hpas.Get(ctx, "burner", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h.Status.CurrentReplicas != 1 || h.Status.DesiredReplicas != 1 {
			return fmt.Errorf("status: %s", hpaSummary(h))
		}
		for _, want := range []struct {
			typ    autoscalingv2.HorizontalPodAutoscalerConditionType
			status corev1.ConditionStatus
			reason string
		}{
			{autoscalingv2.AbleToScale, corev1.ConditionTrue, ""},
			{autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound"},
		} {
			if !hpaCondition(h, want.typ, want.status, want.reason) {
				return fmt.Errorf("want condition %s=%s %s: %s", want.typ, want.status, want.reason, hpaSummary(h))
			}
		}
		return nil
	})
	t.Logf("HPA after the scale-down: %s", hpaSummary(h))
	t.Logf("kctl get hpa (idle again): %s", strings.Join(strings.Fields(c.mustKctl("", "get", "hpa", "burner", "-n", autoscaleNS)), " "))

	// An Event for each rescale, with the reason.
	untilEvery(t, 250*time.Millisecond, 10*time.Second, "SuccessfulRescale Events up and down", func() error {
		evs, err := c.client.CoreV1().Events(autoscaleNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var rescales []string
		sawUp, sawDown := false, false
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind != "HorizontalPodAutoscaler" || e.InvolvedObject.Name != "burner" || e.Reason != "SuccessfulRescale" {
				continue
			}
			rescales = append(rescales, e.Message)
			if e.Type != corev1.EventTypeNormal {
				return fmt.Errorf("SuccessfulRescale of type %s: %s", e.Type, e.Message)
			}
			switch {
			case strings.HasPrefix(e.Message, fmt.Sprintf("New size: %d; reason: cpu resource utilization (percentage of request) above target", up)):
				sawUp = true
			case e.Message == "New size: 1; reason: All metrics below target":
				sawDown = true
			}
		}
		if !sawUp || !sawDown {
			return fmt.Errorf("SuccessfulRescale Events of burner: %q", rescales)
		}
		return nil
	})

	// Clean up: the namespace and everything in it go.
	deleted := time.Now()
	c.mustKctl("", "delete", "namespace", autoscaleNS)
	untilEvery(t, 250*time.Millisecond, 60*time.Second, "namespace "+autoscaleNS+" gone", func() error {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, autoscaleNS, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		pods, err := c.podsOf(ctx, autoscaleNS, "burner")
		return fmt.Errorf("still there (%d pods, %v)", len(pods), err)
	})
	t.Logf("namespace %s deleted in %s", autoscaleNS, time.Since(deleted).Round(100*time.Millisecond))
}

// deploymentReplicas returns the replicas the Deployment asks for (what
// the autoscaler sets through its scale subresource), or -1 when it cannot
// be read.
func (c *realCluster) deploymentReplicas(ctx context.Context, name string) int32 {
	d, err := c.client.AppsV1().Deployments(autoscaleNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		c.t.Logf("reading deployment %s: %v", name, err)
		return -1
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

// utilization returns the cpu utilization in an HPA's status, if any.
func utilization(h *autoscalingv2.HorizontalPodAutoscaler) *int32 {
	for _, m := range h.Status.CurrentMetrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			return m.Resource.Current.AverageUtilization
		}
	}
	return nil
}

// hpaCondition reports whether h has condition typ with status (and
// reason, unless empty).
func hpaCondition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason string) bool {
	for _, cond := range h.Status.Conditions {
		if cond.Type == typ {
			return cond.Status == status && (reason == "" || cond.Reason == reason)
		}
	}
	return false
}

// hpaSummary is an HPA's status, briefly, for logs and failures.
func hpaSummary(h *autoscalingv2.HorizontalPodAutoscaler) string {
	util := "<unknown>"
	if u := utilization(h); u != nil {
		util = fmt.Sprintf("%d%%", *u)
	}
	var conds []string
	for _, c := range h.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s(%s)", c.Type, c.Status, c.Reason))
	}
	return fmt.Sprintf("replicas %d→%d, cpu %s/50%%, conditions %s", h.Status.CurrentReplicas, h.Status.DesiredReplicas, util, strings.Join(conds, " "))
}

// burn is the autoscaling test's load: one client per node host, each
// sending GET u again and again (one connection per request) until stop,
// burnRequests have been sent in all, or burnFor has passed.
type burn struct {
	started  time.Time
	cancel   context.CancelFunc
	ctx      context.Context
	wg       sync.WaitGroup
	sent, ok atomic.Int64
	mu       sync.Mutex
	failed   int
	failures []string
}

func startBurn(parent context.Context, nodes []*realNode, u string) *burn {
	ctx, cancel := context.WithTimeout(parent, burnFor)
	l := &burn{started: time.Now(), ctx: ctx, cancel: cancel}
	for _, n := range nodes {
		l.wg.Add(1)
		go func(h *testhost.Host) {
			defer l.wg.Done()
			hc := hostClient(h, 10*time.Second)
			for ctx.Err() == nil && l.sent.Add(1) <= burnRequests {
				err := l.get(ctx, hc, u)
				if ctx.Err() != nil {
					return // stopped: an interrupted request is no failure
				}
				if err != nil {
					l.mu.Lock()
					l.failed++
					if len(l.failures) < 5 {
						l.failures = append(l.failures, fmt.Sprintf("%s from %s: %v", time.Now().Format("15:04:05.000"), h.Name, err))
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}(n.host)
	}
	go func() { l.wg.Wait(); cancel() }()
	return l
}

func (l *burn) get(ctx context.Context, hc *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// done reports whether the load ended, by its bounds or stop.
func (l *burn) done() bool { return l.ctx.Err() != nil }

// stop ends the load and waits until every client returned.
func (l *burn) stop() {
	l.cancel()
	l.wg.Wait()
}

// counts returns the requests sent (at most burnRequests), answered and
// failed, and the first failures.
func (l *burn) counts() (sent, ok int64, failed int, failures []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(l.sent.Load(), burnRequests), l.ok.Load(), l.failed, append([]string(nil), l.failures...)
}
