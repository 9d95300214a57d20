package hpa

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// The pure half of the autoscaler: Kubernetes' replica calculation
// (pkg/controller/podautoscaler/replica_calculator.go) and its
// stabilization and rate rules (horizontal.go), with the clock passed in.
// Nothing here reads the API or the time.

// PodMetric is one pod's usage of a resource, in milli-units (millicores,
// millibytes), summed over its containers, and the sample it came from.
type PodMetric struct {
	Value     int64
	Timestamp time.Time
	Window    time.Duration
}

// Tolerance is how far the usage ratio may stray from 1 before the
// replica count changes: within [1-Down, 1+Up] nothing happens.
type Tolerance struct {
	Up, Down float64
}

func (t Tolerance) within(ratio float64) bool {
	return 1-t.Down <= ratio && ratio <= 1+t.Up
}

// ResourceInput is what the proposal of one Resource metric is computed
// from.
type ResourceInput struct {
	Resource corev1.ResourceName
	// CurrentReplicas is the target's spec.replicas, through its scale.
	CurrentReplicas int32
	// Pods are the pods the target's selector picks.
	Pods []*corev1.Pod
	// Metrics are the pods' usage by pod name, as the metrics API has it.
	Metrics map[string]PodMetric
	// TargetUtilization is a percentage of the pods' requests; when nil,
	// TargetAverageValue is the target per pod.
	TargetUtilization  *int32
	TargetAverageValue *resource.Quantity
	Tolerance          Tolerance
	// CPUInitializationPeriod: a pod started less than this ago has its
	// CPU sample ignored while unready or measured partly before it became
	// ready (Kubernetes' default 5 minutes).
	CPUInitializationPeriod time.Duration
	// InitialReadinessDelay: a pod past the initialization period that has
	// never been ready, and turned unready within this of its start, is
	// still starting (Kubernetes' default 30 s).
	InitialReadinessDelay time.Duration
	Now                   time.Time
}

// ResourceProposal is one Resource metric's proposed replica count and
// the usage it saw (of the ready pods with metrics).
type ResourceProposal struct {
	Replicas int32
	// Utilization is the average usage as a percentage of requests; set
	// for a utilization target.
	Utilization *int32
	// AverageValue is the average usage per pod, in milli-units.
	AverageValue int64
	// Timestamp is the metrics' sample time.
	Timestamp time.Time
}

// ErrNoPods is a selector that picks no pods.
var ErrNoPods = errors.New("no pods returned by selector while calculating replica count")

// ResourceReplicas proposes a replica count for one Resource metric:
// ceil(ready pods × usage ÷ target), unless the ratio is within the
// tolerance. Pods being deleted or failed are ignored; pending pods and,
// for CPU, pods not yet ready (see ResourceInput) count as unready; ready
// pods without metrics are missing. When pods are missing or unready the
// calculation is redone conservatively, as Kubernetes does: missing pods
// count as using their whole request (the target, for an average value,
// or the target utilization if above 100 %) on a scale-down and nothing
// on a scale-up; unready pods count as using nothing on a scale-up; and
// the count stays if that flips the direction or falls within tolerance.
func ResourceReplicas(in ResourceInput) (ResourceProposal, error) {
	if len(in.Pods) == 0 {
		return ResourceProposal{}, ErrNoPods
	}
	if in.TargetUtilization == nil && in.TargetAverageValue == nil {
		return ResourceProposal{}, errors.New("invalid resource metric source: neither an average utilization target nor an average value target was set")
	}
	metrics := make(map[string]PodMetric, len(in.Metrics))
	var timestamp time.Time
	for name, m := range in.Metrics {
		metrics[name] = m
		if timestamp.IsZero() || m.Timestamp.Before(timestamp) {
			timestamp = m.Timestamp
		}
	}
	ready, unready, missing, ignored := groupPods(in.Pods, metrics, in.Resource, in.CPUInitializationPeriod, in.InitialReadinessDelay, in.Now)
	for name := range ignored {
		delete(metrics, name)
	}
	for name := range unready {
		delete(metrics, name)
	}
	// Metrics of pods the selector does not pick play no part.
	picked := map[string]bool{}
	for _, p := range in.Pods {
		picked[p.Name] = true
	}
	for name := range metrics {
		if !picked[name] {
			delete(metrics, name)
		}
	}
	if len(metrics) == 0 {
		return ResourceProposal{}, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}

	var ratio func(map[string]PodMetric) (float64, *int32, int64, error)
	var missingDown int64 // what a missing pod counts as on a scale-down
	var requests map[string]int64
	if in.TargetUtilization != nil {
		var err error
		if requests, err = podRequests(in.Pods, in.Resource); err != nil {
			return ResourceProposal{}, err
		}
		target := int64(*in.TargetUtilization)
		ratio = func(m map[string]PodMetric) (float64, *int32, int64, error) {
			return utilizationRatio(m, requests, target)
		}
	} else {
		target := in.TargetAverageValue.MilliValue()
		missingDown = target
		ratio = func(m map[string]PodMetric) (float64, *int32, int64, error) {
			var total int64
			for _, pm := range m {
				total += pm.Value
			}
			avg := total / int64(len(m))
			return float64(avg) / float64(target), nil, avg, nil
		}
	}

	usageRatio, utilization, average, err := ratio(metrics)
	if err != nil {
		return ResourceProposal{}, err
	}
	out := ResourceProposal{Utilization: utilization, AverageValue: average, Timestamp: timestamp, Replicas: in.CurrentReplicas}

	scaleUpWithUnready := len(unready) > 0 && usageRatio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if !in.Tolerance.within(usageRatio) {
			out.Replicas = int32(math.Ceil(usageRatio * float64(ready)))
		}
		return out, nil
	}

	if len(missing) > 0 {
		for name := range missing {
			switch {
			case usageRatio < 1.0 && in.TargetUtilization != nil:
				fallback := max(100, int64(*in.TargetUtilization))
				metrics[name] = PodMetric{Value: requests[name] * fallback / 100}
			case usageRatio < 1.0:
				metrics[name] = PodMetric{Value: missingDown}
			case usageRatio > 1.0:
				metrics[name] = PodMetric{Value: 0}
			}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = PodMetric{Value: 0}
		}
	}
	newRatio, _, _, err := ratio(metrics)
	if err != nil {
		return ResourceProposal{}, err
	}
	if in.Tolerance.within(newRatio) || (usageRatio < 1.0 && newRatio > 1.0) || (usageRatio > 1.0 && newRatio < 1.0) {
		return out, nil
	}
	replicas := int32(math.Ceil(newRatio * float64(len(metrics))))
	if (newRatio < 1.0 && replicas > in.CurrentReplicas) || (newRatio > 1.0 && replicas < in.CurrentReplicas) {
		return out, nil
	}
	out.Replicas = replicas
	return out, nil
}

// groupPods sorts the pods into ready (counted), unready, missing
// (ready but no metric) and ignored (deleted or failed), as Kubernetes'
// groupPods does.
func groupPods(pods []*corev1.Pod, metrics map[string]PodMetric, res corev1.ResourceName, cpuInit, readinessDelay time.Duration, now time.Time) (ready int, unready, missing, ignored map[string]bool) {
	unready, missing, ignored = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed {
			ignored[p.Name] = true
			continue
		}
		if p.Status.Phase == corev1.PodPending {
			unready[p.Name] = true
			continue
		}
		m, ok := metrics[p.Name]
		if !ok {
			missing[p.Name] = true
			continue
		}
		if res == corev1.ResourceCPU && cpuUnready(p, m, cpuInit, readinessDelay, now) {
			unready[p.Name] = true
			continue
		}
		ready++
	}
	return ready, unready, missing, ignored
}

// cpuUnready: a CPU sample of a starting pod says little (start-up work),
// so it is ignored while the pod is young and unready or the sample's
// window reaches back before the pod became ready; an older pod is unready
// only if it has never been ready yet.
func cpuUnready(p *corev1.Pod, m PodMetric, cpuInit, readinessDelay time.Duration, now time.Time) bool {
	var cond *corev1.PodCondition
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			cond = &p.Status.Conditions[i]
		}
	}
	if cond == nil || p.Status.StartTime == nil {
		return true
	}
	start := p.Status.StartTime.Time
	if start.Add(cpuInit).After(now) {
		return cond.Status == corev1.ConditionFalse || m.Timestamp.Before(cond.LastTransitionTime.Time.Add(m.Window))
	}
	return cond.Status == corev1.ConditionFalse && start.Add(readinessDelay).After(cond.LastTransitionTime.Time)
}

// podRequests sums each pod's container requests of res, in milli-units:
// the app containers and the sidecars (restartable init containers),
// whose usage the metrics count too; a container without one makes
// utilization meaningless.
func podRequests(pods []*corev1.Pod, res corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, p := range pods {
		var sum int64
		containers := slices.Clone(p.Spec.Containers)
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers, c)
			}
		}
		for _, c := range containers {
			q, ok := c.Resources.Requests[res]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", res, c.Name, p.Name)
			}
			sum += q.MilliValue()
		}
		out[p.Name] = sum
	}
	return out, nil
}

// utilizationRatio is Kubernetes' GetResourceUtilizationRatio: total usage
// over total requests of the pods that have both, as a whole percentage,
// over the target percentage.
func utilizationRatio(metrics map[string]PodMetric, requests map[string]int64, target int64) (float64, *int32, int64, error) {
	var usage, req int64
	n := 0
	for name, m := range metrics {
		r, ok := requests[name]
		if !ok {
			continue
		}
		usage += m.Value
		req += r
		n++
	}
	if req == 0 {
		return 0, nil, 0, errors.New("no metrics returned matched known pods")
	}
	util := int32(usage * 100 / req)
	return float64(util) / float64(target), ptr.To(util), usage / int64(n), nil
}

// MetricProposal is one metric's outcome: a replica count or the error
// that kept it from one.
type MetricProposal struct {
	Name     string
	Replicas int32
	Err      error
}

// Combine picks the largest proposal, as Kubernetes does. When every
// metric failed, or some failed and the rest would scale down (a failed
// metric might have asked for more), it returns the first error and no
// count (-1). Otherwise a failure is returned beside the count.
func Combine(current int32, props []MetricProposal) (replicas int32, name string, err error) {
	replicas = -1
	var firstErr error
	invalid := 0
	for _, p := range props {
		if p.Err != nil {
			invalid++
			if firstErr == nil {
				firstErr = p.Err
			}
			continue
		}
		if p.Replicas > replicas {
			replicas, name = p.Replicas, p.Name
		}
	}
	if invalid >= len(props) || (invalid > 0 && replicas < current) {
		if firstErr == nil {
			firstErr = errors.New("no metrics to scale on")
		}
		return -1, "", firstErr
	}
	return replicas, name, firstErr
}

// Behavior is the autoscaler's scaling rules in both directions, with
// every default filled in.
type Behavior struct {
	ScaleUp, ScaleDown autoscalingv2.HPAScalingRules
}

// EffectiveBehavior fills b's gaps with Kubernetes' defaults: scale up
// with no stabilization by at most max(100 %, 4 pods) per 15 s, scale
// down after downscaleWindow (the controller's 300 s default) by up to
// 100 % per 15 s. A nil b is all defaults.
func EffectiveBehavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior, downscaleWindow time.Duration) Behavior {
	out := Behavior{
		ScaleUp: autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](0),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
			},
		},
		ScaleDown: autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To(int32(downscaleWindow / time.Second)),
			SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
			Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
		},
	}
	if b == nil {
		return out
	}
	fill := func(dst *autoscalingv2.HPAScalingRules, src *autoscalingv2.HPAScalingRules) {
		if src == nil {
			return
		}
		if src.StabilizationWindowSeconds != nil {
			dst.StabilizationWindowSeconds = src.StabilizationWindowSeconds
		}
		if src.SelectPolicy != nil {
			dst.SelectPolicy = src.SelectPolicy
		}
		if src.Policies != nil {
			dst.Policies = src.Policies
		}
		dst.Tolerance = src.Tolerance
	}
	fill(&out.ScaleUp, b.ScaleUp)
	fill(&out.ScaleDown, b.ScaleDown)
	return out
}

// Tolerance is the behavior's per-direction tolerance, def where unset.
func (b Behavior) Tolerance(def float64) Tolerance {
	t := Tolerance{Up: def, Down: def}
	if q := b.ScaleUp.Tolerance; q != nil {
		t.Up = q.AsApproximateFloat64()
	}
	if q := b.ScaleDown.Tolerance; q != nil {
		t.Down = q.AsApproximateFloat64()
	}
	return t
}

// Recommendation is one sync's unstabilized proposal.
type Recommendation struct {
	Replicas int32
	At       time.Time
}

// ScaleEvent is one rescale, counted against the rate policies.
type ScaleEvent struct {
	Change   int32
	At       time.Time
	outdated bool
}

// History is what the autoscaler remembers of one HPA between syncs:
// recent recommendations (for the stabilization windows) and rescales
// (for the rate policies). It lives in the controller's memory only, as
// in Kubernetes; a new leader starts afresh.
type History struct {
	Recommendations []Recommendation
	ScaleUps        []ScaleEvent
	ScaleDowns      []ScaleEvent
}

// NormalizeInput is a proposal to bring within the rules.
type NormalizeInput struct {
	Current, Desired int32
	Min, Max         int32
	Behavior         Behavior
	Now              time.Time
}

// Decision is the normalized replica count and why, in the words of the
// HPA's conditions.
type Decision struct {
	Replicas int32
	// AbleToScale's reason and message: ScaleUpStabilized,
	// ScaleDownStabilized or ReadyForNewScale.
	StabilizeReason, StabilizeMessage string
	// Limited is ScalingLimited's status: the count was cut by a rate
	// policy (ScaleUpLimit, ScaleDownLimit) or min/max (TooManyReplicas,
	// TooFewReplicas); else DesiredWithinRange.
	Limited                   bool
	LimitReason, LimitMessage string
}

// Normalize stabilizes a proposal over the windows (the lowest
// recommendation of the scale-up window, the highest of the scale-down
// window, bounded by the current count), records it in h, then limits it
// by the rate policies and min/max.
func Normalize(h *History, in NormalizeInput) Decision {
	stabilized, reason, msg := h.stabilize(in)
	d := Decision{Replicas: stabilized, StabilizeReason: "ReadyForNewScale", StabilizeMessage: "recommended size matches current size"}
	if stabilized != in.Desired {
		d.StabilizeReason, d.StabilizeMessage = reason, msg
	}
	limited, lreason, lmsg := h.limit(in, stabilized)
	d.Replicas, d.LimitReason, d.LimitMessage = limited, lreason, lmsg
	d.Limited = limited != stabilized
	return d
}

// NormalizeLegacy is Kubernetes' normalization for an autoscaler without
// `behavior` (kubectl autoscale makes those): the highest recommendation
// of the scale-down window (in.Behavior.ScaleDown's window, from
// --horizontal-pod-autoscaler-downscale-stabilization), then at most
// max(2 × current, 4) replicas up per sync, within min and max. It records
// the proposal in h.
func NormalizeLegacy(h *History, in NormalizeInput) Decision {
	window := time.Duration(*in.Behavior.ScaleDown.StabilizationWindowSeconds) * time.Second
	cutoff := in.Now.Add(-window)
	stabilized := in.Desired
	old := -1
	for i, r := range h.Recommendations {
		if r.At.Before(cutoff) {
			old = i
		} else if r.Replicas > stabilized {
			stabilized = r.Replicas
		}
	}
	if old >= 0 {
		h.Recommendations[old] = Recommendation{Replicas: in.Desired, At: in.Now}
	} else {
		h.Recommendations = append(h.Recommendations, Recommendation{Replicas: in.Desired, At: in.Now})
	}
	d := Decision{Replicas: stabilized, StabilizeReason: "ReadyForNewScale", StabilizeMessage: "recommended size matches current size"}
	if stabilized != in.Desired {
		d.StabilizeReason, d.StabilizeMessage = "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
	}
	upLimit := max(2*in.Current, 4)
	maxAllowed, reason, msg := in.Max, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
	if in.Max > upLimit {
		maxAllowed, reason, msg = upLimit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
	}
	switch {
	case stabilized < in.Min:
		d.Replicas, d.LimitReason, d.LimitMessage = in.Min, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
	case stabilized > maxAllowed:
		d.Replicas, d.LimitReason, d.LimitMessage = maxAllowed, reason, msg
	default:
		d.LimitReason, d.LimitMessage = "DesiredWithinRange", "the desired count is within the acceptable range"
	}
	d.Limited = d.Replicas != stabilized
	return d
}

func (h *History) stabilize(in NormalizeInput) (int32, string, string) {
	up := in.Desired
	upCutoff := in.Now.Add(-time.Duration(*in.Behavior.ScaleUp.StabilizationWindowSeconds) * time.Second)
	down := in.Desired
	downCutoff := in.Now.Add(-time.Duration(*in.Behavior.ScaleDown.StabilizationWindowSeconds) * time.Second)
	old := -1
	for i, r := range h.Recommendations {
		if r.At.After(upCutoff) {
			up = min(up, r.Replicas)
		}
		if r.At.After(downCutoff) {
			down = max(down, r.Replicas)
		}
		if r.At.Before(upCutoff) && r.At.Before(downCutoff) {
			old = i
		}
	}
	rec := in.Current
	rec = max(rec, up)
	rec = min(rec, down)
	// Record the unstabilized proposal, reusing an expired slot.
	if old >= 0 {
		h.Recommendations[old] = Recommendation{Replicas: in.Desired, At: in.Now}
	} else {
		h.Recommendations = append(h.Recommendations, Recommendation{Replicas: in.Desired, At: in.Now})
	}
	if in.Desired >= in.Current {
		return rec, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	}
	return rec, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
}

func (h *History) limit(in NormalizeInput, desired int32) (int32, string, string) {
	switch {
	case desired > in.Current:
		limit := max(scaleUpLimit(in.Current, h.ScaleUps, h.ScaleDowns, &in.Behavior.ScaleUp, in.Now), in.Current)
		maxAllowed, reason, msg := in.Max, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if maxAllowed > limit {
			maxAllowed, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > maxAllowed {
			return maxAllowed, reason, msg
		}
	case desired < in.Current:
		limit := min(scaleDownLimit(in.Current, h.ScaleUps, h.ScaleDowns, &in.Behavior.ScaleDown, in.Now), in.Current)
		minAllowed, reason, msg := in.Min, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if minAllowed < limit {
			minAllowed, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < minAllowed {
			return minAllowed, reason, msg
		}
	default:
		// No change wanted, but the count may sit outside min/max (they
		// changed): Kubernetes corrects that before it gets here.
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// changeInPeriod sums the changes of events within the last period.
func changeInPeriod(periodSeconds int32, events []ScaleEvent, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.At.After(cutoff) {
			n += e.Change
		}
	}
	return n
}

// scaleUpLimit is the highest count the scale-up policies allow now.
func scaleUpLimit(current int32, ups, downs []ScaleEvent, r *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	return policyLimit(current, ups, downs, r, now, true)
}

// scaleDownLimit is the lowest count the scale-down policies allow now.
func scaleDownLimit(current int32, ups, downs []ScaleEvent, r *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	return policyLimit(current, ups, downs, r, now, false)
}

// policyLimit is the count the rules allow in one direction: each policy
// from the count at the start of its period; Max picks the most
// permissive, Min the strictest, Disabled none (Kubernetes'
// calculateScale{Up,Down}LimitWithScalingRules, rounding up going up and
// down going down).
func policyLimit(current int32, ups, downs []ScaleEvent, r *autoscalingv2.HPAScalingRules, now time.Time, up bool) int32 {
	sel := ptr.Deref(r.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	// "Most permissive" is the highest count going up, the lowest going down.
	permissive := up == (sel != autoscalingv2.MinChangePolicySelect)
	result, pick := int32(math.MinInt32), func(a, b int32) int32 { return max(a, b) }
	if !permissive {
		result, pick = math.MaxInt32, func(a, b int32) int32 { return min(a, b) }
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		switch {
		case p.Type == autoscalingv2.PodsScalingPolicy && up:
			proposed = start + p.Value
		case p.Type == autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case p.Type == autoscalingv2.PercentScalingPolicy && up:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		case p.Type == autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// RecordScale remembers a rescale from prev to next for the rate
// policies, reusing the slot of an event older than the direction's
// longest policy period.
func (h *History) RecordScale(b Behavior, prev, next int32, now time.Time) {
	record := func(events []ScaleEvent, rules *autoscalingv2.HPAScalingRules, change int32) []ScaleEvent {
		var longest int32
		for _, p := range rules.Policies {
			longest = max(longest, p.PeriodSeconds)
		}
		cutoff := now.Add(-time.Duration(longest) * time.Second)
		old := -1
		for i := range events {
			if events[i].At.Before(cutoff) {
				events[i].outdated = true
			}
			if events[i].outdated {
				old = i
			}
		}
		e := ScaleEvent{Change: change, At: now}
		if old >= 0 {
			events[old] = e
			return events
		}
		return append(events, e)
	}
	switch {
	case next > prev:
		h.ScaleUps = record(h.ScaleUps, &b.ScaleUp, next-prev)
	case next < prev:
		h.ScaleDowns = record(h.ScaleDowns, &b.ScaleDown, prev-next)
	}
}
