package hpa

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// podOpt changes a test pod.
type podOpt func(*corev1.Pod)

// testPod is a Running pod requesting 100m CPU and 100Mi memory, started
// and ready since 10 minutes before t0 (past every initialization period).
func testPod(name string, opts ...podOpt) *corev1.Pod {
	started := metav1.NewTime(t0.Add(-10 * time.Minute))
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("100Mi")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: started}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

// readiness sets the pod's start and its Ready condition, relative to t0.
func readiness(startedAgo time.Duration, status corev1.ConditionStatus, changedAgo time.Duration) podOpt {
	return func(p *corev1.Pod) {
		s := metav1.NewTime(t0.Add(-startedAgo))
		p.Status.StartTime = &s
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(t0.Add(-changedAgo))}}
	}
}

func deleting(p *corev1.Pod) { now := metav1.NewTime(t0); p.DeletionTimestamp = &now }

func noRequests(p *corev1.Pod) { p.Spec.Containers[0].Resources = corev1.ResourceRequirements{} }

func pods(n int, opts ...podOpt) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, testPod(fmt.Sprintf("p%d", i), opts...))
	}
	return out
}

// usage gives the named pods a sample of v (milli-units) taken at t0 over
// 15 s.
func usage(v int64, names ...string) map[string]PodMetric {
	m := map[string]PodMetric{}
	for _, n := range names {
		m[n] = PodMetric{Value: v, Timestamp: t0, Window: 15 * time.Second}
	}
	return m
}

func merge(ms ...map[string]PodMetric) map[string]PodMetric {
	out := map[string]PodMetric{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func names(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("p%d", i))
	}
	return out
}

func TestResourceReplicas(t *testing.T) {
	mi := func(n int64) int64 { return n << 20 * 1000 } // MiB in millibytes
	tests := []struct {
		name        string
		res         corev1.ResourceName
		current     int32
		pods        []*corev1.Pod
		metrics     map[string]PodMetric
		utilization int32  // target %, else averageValue
		average     string // target average value
		tolerance   *Tolerance
		want        int32
		wantUtil    int32 // -1: none
		wantErr     string
	}{
		{name: "within tolerance stays", current: 3, pods: pods(3), metrics: usage(52, names(3)...), utilization: 50, want: 3, wantUtil: 52},
		{name: "at the tolerance's edge stays", current: 3, pods: pods(3), metrics: usage(55, names(3)...), utilization: 50, want: 3, wantUtil: 55},
		{name: "just past the tolerance scales up", current: 3, pods: pods(3), metrics: usage(56, names(3)...), utilization: 50, want: 4, wantUtil: 56},
		{name: "double the target doubles", current: 3, pods: pods(3), metrics: usage(100, names(3)...), utilization: 50, want: 6, wantUtil: 100},
		{name: "far below the target scales down", current: 4, pods: pods(4), metrics: usage(10, names(4)...), utilization: 50, want: 1, wantUtil: 10},
		{name: "tolerance per direction", current: 3, pods: pods(3), metrics: usage(70, names(3)...), utilization: 50,
			tolerance: &Tolerance{Up: 0.5, Down: 0.1}, want: 3, wantUtil: 70},
		{name: "missing metrics on a scale-down count as the whole request", current: 4, pods: pods(4),
			metrics: usage(10, "p0", "p1", "p2"), utilization: 50, want: 3, wantUtil: 10},
		{name: "missing metrics on a scale-down count as a target above 100%", current: 4, pods: pods(4),
			metrics: usage(10, "p0", "p1", "p2"), utilization: 200, want: 2, wantUtil: 10},
		{name: "missing metrics on a scale-up count as nothing", current: 4, pods: pods(4),
			metrics: usage(100, "p0", "p1", "p2"), utilization: 50, want: 6, wantUtil: 100},
		{name: "missing metrics that flip the direction keep the count", current: 2, pods: pods(2),
			metrics: usage(60, "p0"), utilization: 50, want: 2, wantUtil: 60},
		{name: "unready pods on a scale-up count as nothing", current: 3,
			pods:    append(pods(2), testPod("late", readiness(time.Minute, corev1.ConditionFalse, time.Minute))),
			metrics: usage(100, "p0", "p1", "late"), utilization: 50, want: 4, wantUtil: 100},
		{name: "unready pods are left out of a scale-down", current: 3,
			pods:    append(pods(2), testPod("late", readiness(time.Minute, corev1.ConditionFalse, time.Minute))),
			metrics: usage(10, "p0", "p1", "late"), utilization: 50, want: 1, wantUtil: 10},
		{name: "pending pods count as unready", current: 3, pods: append(pods(2), testPod("new", phase(corev1.PodPending))),
			metrics: usage(100, "p0", "p1"), utilization: 50, want: 4, wantUtil: 100},
		{name: "a young pod's sample from before it was ready is ignored", current: 2,
			pods:    append(pods(1), testPod("young", readiness(time.Minute, corev1.ConditionTrue, 10*time.Second))),
			metrics: merge(usage(100, "p0"), usage(500, "young")), utilization: 100, want: 2, wantUtil: 100},
		{name: "a young pod ready for a window counts", current: 2,
			pods:    append(pods(1), testPod("young", readiness(2*time.Minute, corev1.ConditionTrue, time.Minute))),
			metrics: merge(usage(100, "p0"), usage(500, "young")), utilization: 100, want: 6, wantUtil: 300},
		{name: "an old pod never ready is unready", current: 2,
			pods:    append(pods(1), testPod("stuck", readiness(10*time.Minute, corev1.ConditionFalse, 10*time.Minute-10*time.Second))),
			metrics: merge(usage(100, "p0"), usage(500, "stuck")), utilization: 100, want: 2, wantUtil: 100},
		{name: "an old pod that was ready once counts", current: 2,
			pods:    append(pods(1), testPod("flaky", readiness(10*time.Minute, corev1.ConditionFalse, time.Minute))),
			metrics: merge(usage(100, "p0"), usage(500, "flaky")), utilization: 100, want: 6, wantUtil: 300},
		{name: "readiness does not matter for memory", res: corev1.ResourceMemory, current: 2,
			pods:    append(pods(1), testPod("late", readiness(time.Minute, corev1.ConditionFalse, time.Minute))),
			metrics: usage(mi(200), "p0", "late"), utilization: 100, want: 4, wantUtil: 200},
		{name: "deleted and failed pods are ignored", current: 3,
			pods:    append(pods(1), testPod("gone", deleting), testPod("failed", phase(corev1.PodFailed))),
			metrics: merge(usage(10, "p0"), usage(1000, "gone", "failed")), utilization: 50, want: 1, wantUtil: 10},
		{name: "metrics of pods not picked play no part", current: 2, pods: pods(2),
			metrics: merge(usage(50, names(2)...), usage(5000, "other")), utilization: 50, want: 2, wantUtil: 50},
		{name: "average value", res: corev1.ResourceMemory, current: 2, pods: pods(2),
			metrics: usage(mi(200), names(2)...), average: "100Mi", want: 4, wantUtil: -1},
		{name: "average value missing on a scale-down counts as the target", res: corev1.ResourceMemory, current: 4, pods: pods(4),
			metrics: usage(mi(10), "p0", "p1"), average: "100Mi", want: 3, wantUtil: -1},
		{name: "average value within tolerance", res: corev1.ResourceMemory, current: 2, pods: pods(2),
			metrics: usage(mi(105), names(2)...), average: "100Mi", want: 2, wantUtil: -1},
		{name: "no pods", current: 2, metrics: usage(10, "p0"), utilization: 50, wantErr: "no pods"},
		{name: "no metrics", current: 2, pods: pods(2), utilization: 50, wantErr: "did not receive metrics"},
		{name: "only unready pods have metrics", current: 1, pods: []*corev1.Pod{testPod("new", phase(corev1.PodPending))},
			metrics: usage(100, "new"), utilization: 50, wantErr: "did not receive metrics"},
		{name: "missing request", current: 2, pods: pods(2, noRequests), metrics: usage(10, names(2)...), utilization: 50,
			wantErr: "missing request for cpu in container app of Pod p0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := ResourceInput{Resource: tc.res, CurrentReplicas: tc.current, Pods: tc.pods, Metrics: tc.metrics,
				Tolerance: Tolerance{Up: 0.1, Down: 0.1}, CPUInitializationPeriod: 5 * time.Minute, InitialReadinessDelay: 30 * time.Second, Now: t0}
			if in.Resource == "" {
				in.Resource = corev1.ResourceCPU
			}
			if tc.tolerance != nil {
				in.Tolerance = *tc.tolerance
			}
			if tc.average != "" {
				in.TargetAverageValue = ptr.To(resource.MustParse(tc.average))
			} else {
				in.TargetUtilization = ptr.To(tc.utilization)
			}
			got, err := ResourceReplicas(in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Replicas != tc.want {
				t.Errorf("replicas %d, want %d", got.Replicas, tc.want)
			}
			switch {
			case tc.wantUtil < 0 && got.Utilization != nil:
				t.Errorf("utilization %d%% for an average value target", *got.Utilization)
			case tc.wantUtil >= 0 && (got.Utilization == nil || *got.Utilization != tc.wantUtil):
				t.Errorf("utilization %v, want %d%%", got.Utilization, tc.wantUtil)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	tests := []struct {
		name     string
		current  int32
		props    []MetricProposal
		want     int32
		wantName string
		wantErr  error
	}{
		{"largest wins", 3, []MetricProposal{{"cpu", 5, nil}, {"memory", 7, nil}}, 7, "memory", nil},
		{"all failed", 3, []MetricProposal{{"cpu", 0, errA}, {"memory", 0, errB}}, -1, "", errA},
		{"one failed, others scale up", 3, []MetricProposal{{"cpu", 0, errA}, {"memory", 6, nil}}, 6, "memory", errA},
		{"one failed, others would scale down", 3, []MetricProposal{{"cpu", 0, errA}, {"memory", 2, nil}}, -1, "", errA},
		{"none", 3, nil, -1, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, name, err := Combine(tc.current, tc.props)
			if got != tc.want || name != tc.wantName {
				t.Errorf("got %d from %q, want %d from %q", got, name, tc.want, tc.wantName)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && tc.want < 0 && err == nil {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestEffectiveBehavior(t *testing.T) {
	def := EffectiveBehavior(nil, 300*time.Second)
	if *def.ScaleUp.StabilizationWindowSeconds != 0 || *def.ScaleDown.StabilizationWindowSeconds != 300 ||
		len(def.ScaleUp.Policies) != 2 || len(def.ScaleDown.Policies) != 1 || def.ScaleDown.Policies[0].Value != 100 {
		t.Errorf("defaults: %+v", def)
	}
	b := EffectiveBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](5), Tolerance: ptr.To(resource.MustParse("0.2"))}}, 300*time.Second)
	if *b.ScaleDown.StabilizationWindowSeconds != 5 || len(b.ScaleDown.Policies) != 1 || *b.ScaleUp.StabilizationWindowSeconds != 0 {
		t.Errorf("partial behavior: %+v", b)
	}
	if tol := b.Tolerance(0.1); tol.Down != 0.2 || tol.Up != 0.1 {
		t.Errorf("tolerance: %+v", tol)
	}
}

func rules(window int32, sel autoscalingv2.ScalingPolicySelect, policies ...autoscalingv2.HPAScalingPolicy) autoscalingv2.HPAScalingRules {
	return autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(window), SelectPolicy: ptr.To(sel), Policies: policies}
}

func podsPolicy(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: n, PeriodSeconds: period}
}

func percentPolicy(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: n, PeriodSeconds: period}
}

func TestNormalize(t *testing.T) {
	defaults := EffectiveBehavior(nil, 300*time.Second)
	at := func(ago time.Duration) time.Time { return t0.Add(-ago) }
	tests := []struct {
		name                     string
		behavior                 Behavior
		history                  History
		current, desired         int32
		min, max                 int32
		want                     int32
		wantStabilize, wantLimit string
	}{
		{name: "within range", behavior: defaults, current: 3, desired: 5, min: 1, max: 10, want: 5,
			wantStabilize: "ReadyForNewScale", wantLimit: "DesiredWithinRange"},
		{name: "max clamps", behavior: defaults, current: 2, desired: 5, min: 1, max: 4, want: 4,
			wantStabilize: "ReadyForNewScale", wantLimit: "TooManyReplicas"},
		{name: "min clamps", behavior: defaults, current: 3, desired: 1, min: 2, max: 10, want: 2,
			wantStabilize: "ReadyForNewScale", wantLimit: "TooFewReplicas"},
		{name: "default scale-up rate: 4 pods or 100% per 15s", behavior: defaults, current: 2, desired: 10, min: 1, max: 20, want: 6,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "default scale-up rate counts this period's rescales", behavior: defaults,
			history: History{ScaleUps: []ScaleEvent{{Change: 4, At: at(10 * time.Second)}}},
			current: 6, desired: 20, min: 1, max: 20, want: 6,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "scale-up rate period over", behavior: defaults,
			history: History{ScaleUps: []ScaleEvent{{Change: 4, At: at(16 * time.Second)}}},
			current: 6, desired: 20, min: 1, max: 20, want: 12,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "scale-down window keeps the highest recent recommendation", behavior: defaults,
			history: History{Recommendations: []Recommendation{{5, at(100 * time.Second)}, {4, at(50 * time.Second)}}},
			current: 5, desired: 2, min: 1, max: 10, want: 5,
			wantStabilize: "ScaleDownStabilized", wantLimit: "DesiredWithinRange"},
		{name: "scale-down window partly passed", behavior: defaults,
			history: History{Recommendations: []Recommendation{{5, at(301 * time.Second)}, {4, at(50 * time.Second)}}},
			current: 5, desired: 2, min: 1, max: 10, want: 4,
			wantStabilize: "ScaleDownStabilized", wantLimit: "DesiredWithinRange"},
		{name: "scale-down window passed", behavior: defaults,
			history: History{Recommendations: []Recommendation{{5, at(301 * time.Second)}}},
			current: 5, desired: 2, min: 1, max: 10, want: 2,
			wantStabilize: "ReadyForNewScale", wantLimit: "DesiredWithinRange"},
		{name: "scale-up window keeps the lowest recent recommendation",
			behavior: Behavior{ScaleUp: rules(60, autoscalingv2.MaxChangePolicySelect, percentPolicy(100, 15)), ScaleDown: defaults.ScaleDown},
			history:  History{Recommendations: []Recommendation{{2, at(30 * time.Second)}}},
			current:  2, desired: 6, min: 1, max: 10, want: 2,
			wantStabilize: "ScaleUpStabilized", wantLimit: "DesiredWithinRange"},
		{name: "pods policy per period",
			behavior: Behavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, podsPolicy(1, 60)), ScaleDown: defaults.ScaleDown},
			history:  History{ScaleUps: []ScaleEvent{{Change: 1, At: at(30 * time.Second)}}},
			current:  3, desired: 6, min: 1, max: 10, want: 3,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "min select picks the strictest policy",
			behavior: Behavior{ScaleUp: rules(0, autoscalingv2.MinChangePolicySelect, podsPolicy(4, 15), percentPolicy(50, 15)), ScaleDown: defaults.ScaleDown},
			current:  4, desired: 20, min: 1, max: 20, want: 6,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "percent scale-down policy",
			behavior: Behavior{ScaleUp: defaults.ScaleUp, ScaleDown: rules(0, autoscalingv2.MaxChangePolicySelect, percentPolicy(50, 60))},
			current:  10, desired: 1, min: 1, max: 10, want: 5,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleDownLimit"},
		{name: "scale-down policy counts this period's rescales",
			behavior: Behavior{ScaleUp: defaults.ScaleUp, ScaleDown: rules(0, autoscalingv2.MaxChangePolicySelect, podsPolicy(2, 60))},
			history:  History{ScaleDowns: []ScaleEvent{{Change: 1, At: at(30 * time.Second)}}},
			current:  9, desired: 1, min: 1, max: 10, want: 8,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleDownLimit"},
		{name: "scale-down disabled",
			behavior: Behavior{ScaleUp: defaults.ScaleUp, ScaleDown: rules(0, autoscalingv2.DisabledPolicySelect, percentPolicy(100, 15))},
			current:  5, desired: 2, min: 1, max: 10, want: 5,
			wantStabilize: "ReadyForNewScale", wantLimit: "ScaleDownLimit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.history
			d := Normalize(&h, NormalizeInput{Current: tc.current, Desired: tc.desired, Min: tc.min, Max: tc.max, Behavior: tc.behavior, Now: t0})
			if d.Replicas != tc.want || d.StabilizeReason != tc.wantStabilize || d.LimitReason != tc.wantLimit {
				t.Errorf("got %d (%s, %s), want %d (%s, %s)", d.Replicas, d.StabilizeReason, d.LimitReason, tc.want, tc.wantStabilize, tc.wantLimit)
			}
			if d.Limited != (tc.wantLimit != "DesiredWithinRange") {
				t.Errorf("limited %v with reason %s", d.Limited, d.LimitReason)
			}
			last := h.Recommendations[len(h.Recommendations)-1]
			found := false
			for _, r := range h.Recommendations {
				found = found || (r.Replicas == tc.desired && r.At.Equal(t0))
			}
			if !found {
				t.Errorf("the proposal %d was not recorded: %+v (last %+v)", tc.desired, h.Recommendations, last)
			}
		})
	}
}

// TestNormalizeOverTime steps a fake clock through a burst and its end:
// the scale-up follows the rate policy period by period, and the
// scale-down waits out the window after the last high recommendation,
// never beyond min and max.
func TestNormalizeOverTime(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	b := EffectiveBehavior(&autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}}, 300*time.Second)
	var h History
	current := int32(1)
	steps := []struct {
		after   time.Duration // since the previous step
		desired int32         // the metrics' proposal
		want    int32
	}{
		{0, 40, 5},                 // 1 → +4 pods (more than 100%)
		{5 * time.Second, 40, 5},   // same period: no more
		{10 * time.Second, 40, 10}, // new period: 100% of 5
		{15 * time.Second, 40, 12}, // max
		{15 * time.Second, 2, 12},  // load gone: the window holds
		{30 * time.Second, 2, 12},
		{14 * time.Second, 2, 12}, // 59 s after the last 40
		{2 * time.Second, 2, 3},   // window over; min is 3
		{60 * time.Second, 1, 3},
	}
	for i, s := range steps {
		clk.Step(s.after)
		d := Normalize(&h, NormalizeInput{Current: current, Desired: s.desired, Min: 3, Max: 12, Behavior: b, Now: clk.Now()})
		if d.Replicas != s.want {
			t.Fatalf("step %d (+%s, proposal %d): %d replicas, want %d (%s/%s)", i, s.after, s.desired, d.Replicas, s.want, d.StabilizeReason, d.LimitReason)
		}
		if d.Replicas != current {
			h.RecordScale(b, current, d.Replicas, clk.Now())
			current = d.Replicas
		}
	}
	if len(h.Recommendations) > 5 {
		t.Errorf("expired recommendations are not reused: %d kept", len(h.Recommendations))
	}
}

func TestRecordScale(t *testing.T) {
	b := EffectiveBehavior(nil, time.Minute)
	var h History
	h.RecordScale(b, 2, 6, t0)
	h.RecordScale(b, 6, 8, t0.Add(5*time.Second))
	h.RecordScale(b, 8, 3, t0.Add(6*time.Second))
	if len(h.ScaleUps) != 2 || h.ScaleUps[0].Change != 4 || h.ScaleUps[1].Change != 2 || len(h.ScaleDowns) != 1 || h.ScaleDowns[0].Change != 5 {
		t.Fatalf("events: %+v", h)
	}
	// Past the longest period (15 s) the old slot is reused.
	h.RecordScale(b, 3, 4, t0.Add(20*time.Second))
	if len(h.ScaleUps) != 2 || h.ScaleUps[0].Change != 1 {
		t.Fatalf("outdated event not reused: %+v", h.ScaleUps)
	}
	h.RecordScale(b, 4, 4, t0.Add(21*time.Second))
	if len(h.ScaleUps) != 2 || len(h.ScaleDowns) != 1 {
		t.Fatalf("no change recorded an event: %+v", h)
	}
}

func TestPodRequestsCountSidecars(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	req := func(cpu string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
	}
	p := &corev1.Pod{}
	p.Name = "p"
	p.Spec.InitContainers = []corev1.Container{
		{Name: "setup", Resources: req("500m")},                           // runs to completion: not counted
		{Name: "sidecar", RestartPolicy: &always, Resources: req("100m")}, // runs beside the app: counted
	}
	p.Spec.Containers = []corev1.Container{{Name: "app", Resources: req("100m")}}
	got, err := podRequests([]*corev1.Pod{p}, corev1.ResourceCPU)
	if err != nil || got["p"] != 200 {
		t.Fatalf("podRequests = %v, %v; want 200m (app + sidecar)", got, err)
	}
	p.Spec.InitContainers[1].Resources = corev1.ResourceRequirements{}
	if _, err := podRequests([]*corev1.Pod{p}, corev1.ResourceCPU); err == nil || !strings.Contains(err.Error(), "sidecar") {
		t.Fatalf("a sidecar without a request: err %v, want one naming it", err)
	}
}

// TestNormalizeLegacy: an autoscaler without behavior, as Kubernetes'
// normalizeDesiredReplicas: up at most max(2×current, 4) per sync, down
// held by the highest recommendation of the downscale window.
func TestNormalizeLegacy(t *testing.T) {
	b := EffectiveBehavior(nil, 300*time.Second)
	at := func(ago time.Duration) time.Time { return t0.Add(-ago) }
	for _, tc := range []struct {
		name                     string
		history                  []Recommendation
		current, desired         int32
		min, max                 int32
		want                     int32
		wantStabilize, wantLimit string
	}{
		{name: "1 up to 4 at most", current: 1, desired: 5, min: 1, max: 10, want: 4, wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "3 up to 6 at most", current: 3, desired: 7, min: 1, max: 10, want: 6, wantStabilize: "ReadyForNewScale", wantLimit: "ScaleUpLimit"},
		{name: "max below the rate limit", current: 3, desired: 7, min: 1, max: 5, want: 5, wantStabilize: "ReadyForNewScale", wantLimit: "TooManyReplicas"},
		{name: "within range", current: 4, desired: 6, min: 1, max: 10, want: 6, wantStabilize: "ReadyForNewScale", wantLimit: "DesiredWithinRange"},
		{name: "down held by a recent higher recommendation", history: []Recommendation{{Replicas: 8, At: at(time.Minute)}},
			current: 8, desired: 2, min: 1, max: 10, want: 8, wantStabilize: "ScaleDownStabilized", wantLimit: "DesiredWithinRange"},
		{name: "down once the window passed", history: []Recommendation{{Replicas: 8, At: at(301 * time.Second)}},
			current: 8, desired: 2, min: 1, max: 10, want: 2, wantStabilize: "ReadyForNewScale", wantLimit: "DesiredWithinRange"},
		{name: "min clamps", current: 3, desired: 1, min: 2, max: 10, want: 2, wantStabilize: "ReadyForNewScale", wantLimit: "TooFewReplicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &History{Recommendations: slices.Clone(tc.history)}
			d := NormalizeLegacy(h, NormalizeInput{Current: tc.current, Desired: tc.desired, Min: tc.min, Max: tc.max, Behavior: b, Now: t0})
			if d.Replicas != tc.want || d.StabilizeReason != tc.wantStabilize || d.LimitReason != tc.wantLimit {
				t.Fatalf("= %d (%s, %s), want %d (%s, %s)", d.Replicas, d.StabilizeReason, d.LimitReason, tc.want, tc.wantStabilize, tc.wantLimit)
			}
			if d.Limited != (tc.wantLimit != "DesiredWithinRange") {
				t.Fatalf("Limited = %v with %s", d.Limited, d.LimitReason)
			}
			if n := len(h.Recommendations); n == 0 || !slices.ContainsFunc(h.Recommendations, func(r Recommendation) bool { return r.Replicas == tc.desired && r.At.Equal(t0) }) {
				t.Fatalf("proposal not recorded: %+v", h.Recommendations)
			}
		})
	}
}
