package hpa_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/apiserver/app"
	capp "github.com/kubeish/kubeish/controller/app"
	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var ctx = context.Background()

// fakeUsage stands in for the node agents behind the apiserver's metrics
// scraper: every running pod of one namespace uses cpuMilli millicores.
type fakeUsage struct {
	ns       string
	cs       atomic.Pointer[kubernetes.Clientset]
	cpuMilli atomic.Int64
}

func (f *fakeUsage) GetSummary(ctx context.Context, node *corev1.Node) (*stats.Summary, error) {
	cs := f.cs.Load()
	if cs == nil {
		return nil, errors.New("not yet")
	}
	pods, err := cs.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	nc, ws := uint64(f.cpuMilli.Load())*1e6, uint64(20<<20)
	sample := func() (*stats.CPUStats, *stats.MemoryStats) {
		return &stats.CPUStats{Time: now, UsageNanoCores: &nc}, &stats.MemoryStats{Time: now, WorkingSetBytes: &ws}
	}
	s := &stats.Summary{}
	s.Node.NodeName = node.Name
	s.Node.CPU, s.Node.Memory = sample()
	for _, p := range pods.Items {
		c, m := sample()
		s.Pods = append(s.Pods, stats.PodStats{PodRef: stats.PodReference{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)},
			Containers: []stats.ContainerStats{{Name: "app", CPU: c, Memory: m}}})
	}
	return s, nil
}

func replicas(t *testing.T, cs kubernetes.Interface, ns, name string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

func rescales(t *testing.T, cs kubernetes.Interface, ns string) []string {
	t.Helper()
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": "HorizontalPodAutoscaler", "reason": "SuccessfulRescale"}.String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Message)
	}
	return out
}

func condition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) string {
	for _, c := range h.Status.Conditions {
		if c.Type == typ {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}

// start runs the real apiserver, its metrics API fed by a fakeUsage for
// ns, the whole controller with a 1 s autoscaler sync, a fake kubelet for
// ns and one Ready node.
func start(t *testing.T, ns string) (*testenv.Env, kubernetes.Interface, *fakeUsage) {
	t.Helper()
	usage := &fakeUsage{ns: ns}
	env := testenv.Start(t, func(o *app.Options) {
		o.MetricResolution = 200 * time.Millisecond
		o.SummaryGetter = usage
	})
	cs := kubernetes.NewForConfigOrDie(env.Config)
	usage.cs.Store(cs)
	ctltest.Start(t, env, func(o *capp.Options) {
		o.HPASyncPeriod = time.Second
		// The fake kubelet's pods are ready at once: their first samples count.
		o.HPACPUInitializationPeriod = 0
		// n1 has no node agent renewing its Lease; it must stay Ready (the
		// scraper reads Ready nodes only).
		o.NodeMonitorGracePeriod, o.PodEvictionTimeout = time.Hour, time.Hour
	})
	ctltest.Namespace(t, cs, ns)
	ctltest.StartKubelet(t, cs, ns, nil)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env, cs, usage
}

func deployment(ns, name string, replicas int32, cpuRequest string) *appsv1.Deployment {
	lbl := map[string]string{"app": name}
	c := corev1.Container{Name: "app", Image: "echo:v1"}
	if cpuRequest != "" {
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuRequest)}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}},
	}
}

func autoscaler(ns, name, kind string, minReplicas, maxReplicas, cpuPercent int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: kind, Name: name},
			MinReplicas:    ptr.To(minReplicas), MaxReplicas: maxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(cpuPercent)}}}},
		},
	}
}

// TestAutoscaling runs the real apiserver (its metrics API fed fake node
// summaries) and the whole controller: a load above the target scales the
// Deployment up in one sync, capped at maxReplicas; when the load goes,
// the scale-down waits out the stabilization window and stops at
// minReplicas.
func TestAutoscaling(t *testing.T) {
	const ns, window = "autoscale", 5 * time.Second
	env, cs, usage := start(t, ns)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, "web", 2, "100m"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	usage.cpuMilli.Store(200) // 200% of the request, four times the target
	mc := metricsclient.NewForConfigOrDie(env.Config)
	poll.Until(t, 30*time.Second, "metrics of both pods at 200m", func() (bool, error) {
		l, err := mc.MetricsV1beta1().PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		n := 0
		for _, m := range l.Items {
			if m.Containers[0].Usage.Cpu().MilliValue() == 200 {
				n++
			}
		}
		return n == 2, fmt.Errorf("%d pod metrics at 200m", n)
	})

	h := autoscaler(ns, "web", "Deployment", 2, 5, 50)
	h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To(int32(window / time.Second))}}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, h, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Up: the first sync asks for 8, the default rate allows 6, max is 5.
	poll.Until(t, 10*time.Second, "scaled to 5", func() (bool, error) {
		n := replicas(t, cs, ns, "web")
		return n == 5, fmt.Errorf("%d replicas", n)
	})
	poll.Until(t, 10*time.Second, "one rescale event, to 5", func() (bool, error) {
		got := rescales(t, cs, ns)
		return len(got) == 1 && got[0] == "New size: 5; reason: cpu resource utilization (percentage of request) above target",
			fmt.Errorf("events %q", got)
	})
	poll.Until(t, 10*time.Second, "status: 5 replicas, 200%, limited by max", func() (bool, error) {
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := h.Status
		ok := st.CurrentReplicas == 5 && st.DesiredReplicas == 5 && st.LastScaleTime != nil && len(st.CurrentMetrics) == 1 &&
			ptr.Deref(st.CurrentMetrics[0].Resource.Current.AverageUtilization, 0) == 200 &&
			condition(h, autoscalingv2.ScalingLimited) == "True/TooManyReplicas" && condition(h, autoscalingv2.ScalingActive) == "True/ValidMetricFound" &&
			strings.HasPrefix(condition(h, autoscalingv2.AbleToScale), "True/")
		return ok, fmt.Errorf("status %+v", st)
	})
	poll.Never(t, 3*time.Second, "never beyond maxReplicas", func() error {
		if n := replicas(t, cs, ns, "web"); n > 5 {
			return fmt.Errorf("%d replicas, max is 5", n)
		}
		return nil
	})

	// Down: the load goes; the window holds the count, then min stops it.
	usage.cpuMilli.Store(10)
	loadGone := time.Now()
	poll.Never(t, window-2*time.Second, "no scale-down inside the stabilization window", func() error {
		if n := replicas(t, cs, ns, "web"); n != 5 {
			return fmt.Errorf("%d replicas %s after the load went", n, time.Since(loadGone))
		}
		return nil
	})
	poll.Until(t, 20*time.Second, "scaled down to minReplicas", func() (bool, error) {
		n := replicas(t, cs, ns, "web")
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		l, err := mc.MetricsV1beta1().PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		return n == 2, fmt.Errorf("%d replicas, status %+v, pod metrics %v %+v", n, h.Status, err, l)
	})
	if took := time.Since(loadGone); took < window-time.Second-200*time.Millisecond {
		t.Errorf("scaled down %s after the load went, inside the %s window", took, window)
	}
	poll.Until(t, 10*time.Second, "status: limited by min", func() (bool, error) {
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return condition(h, autoscalingv2.ScalingLimited) == "True/TooFewReplicas" && h.Status.CurrentReplicas == 2,
			fmt.Errorf("conditions %+v", h.Status.Conditions)
	})
	poll.Never(t, 2*time.Second, "never below minReplicas", func() error {
		if n := replicas(t, cs, ns, "web"); n != 2 {
			return fmt.Errorf("%d replicas, min is 2", n)
		}
		return nil
	})
	poll.Until(t, 10*time.Second, "a second rescale event, to 2", func() (bool, error) {
		got := rescales(t, cs, ns)
		return len(got) == 2 && got[1] == "New size: 2; reason: All metrics below target", fmt.Errorf("events %q", got)
	})
}

// TestAutoscalerConditions: what keeps an autoscaler from scaling shows in
// its conditions and events, and it leaves its target alone.
func TestAutoscalerConditions(t *testing.T) {
	const ns = "conditions"
	_, cs, usage := start(t, ns)
	usage.cpuMilli.Store(500)
	for _, d := range []*appsv1.Deployment{deployment(ns, "norequests", 2, ""), deployment(ns, "idle", 0, "100m")} {
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		hpa       *autoscalingv2.HorizontalPodAutoscaler
		condition autoscalingv2.HorizontalPodAutoscalerConditionType
		want      string // status/reason
		message   string
		event     string // a Warning event's reason, "" for none
	}{
		{autoscaler(ns, "norequests", "Deployment", 1, 5, 50), autoscalingv2.ScalingActive, "False/FailedGetResourceMetric",
			"missing request for cpu in container app", "FailedComputeMetricsReplicas"},
		{autoscaler(ns, "idle", "Deployment", 1, 5, 50), autoscalingv2.ScalingActive, "False/ScalingDisabled",
			"replica count of the target is zero", ""},
		{autoscaler(ns, "nothere", "Deployment", 1, 5, 50), autoscalingv2.AbleToScale, "False/FailedGetScale",
			`"nothere" not found`, "FailedGetScale"},
		{autoscaler(ns, "sts", "StatefulSet", 1, 5, 50), autoscalingv2.AbleToScale, "False/FailedGetScale",
			"only apps Deployments and ReplicaSets are scaled", "FailedGetScale"},
	}
	for _, tc := range tests {
		if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, tc.hpa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range tests {
		t.Run(tc.hpa.Name, func(t *testing.T) {
			poll.Until(t, 20*time.Second, fmt.Sprintf("%s %s", tc.condition, tc.want), func() (bool, error) {
				h, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, tc.hpa.Name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				for _, c := range h.Status.Conditions {
					if c.Type == tc.condition && string(c.Status)+"/"+c.Reason == tc.want && strings.Contains(c.Message, tc.message) {
						return true, nil
					}
				}
				return false, fmt.Errorf("conditions %+v", h.Status.Conditions)
			})
			if tc.event == "" {
				return
			}
			poll.Until(t, 10*time.Second, "a "+tc.event+" event", func() (bool, error) {
				evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
					"involvedObject.name": tc.hpa.Name, "reason": tc.event, "type": corev1.EventTypeWarning}.String()})
				if err != nil {
					return false, err
				}
				return len(evs.Items) > 0, nil
			})
		})
	}
	for _, name := range []string{"norequests", "idle"} {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int32{"norequests": 2, "idle": 0}[name]; *d.Spec.Replicas != want {
			t.Errorf("%s was scaled to %d", name, *d.Spec.Replicas)
		}
	}
}
