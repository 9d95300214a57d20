package hpa

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	autoscalinginformers "k8s.io/client-go/informers/autoscaling/v2"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/loop"
)

// Name is the loop's name in logs, metrics and events.
const Name = "horizontalpodautoscaler"

// MetricsClient reads pods' usage from the resource metrics API.
type MetricsClient interface {
	// PodMetrics lists the metrics of the pods in ns that sel picks.
	PodMetrics(ctx context.Context, ns string, sel labels.Selector) ([]metricsv1beta1.PodMetrics, error)
}

// APIMetrics is a MetricsClient over metrics.k8s.io/v1beta1.
type APIMetrics struct {
	Client metricsclient.Interface
}

// PodMetrics implements MetricsClient.
func (m APIMetrics) PodMetrics(ctx context.Context, ns string, sel labels.Selector) ([]metricsv1beta1.PodMetrics, error) {
	l, err := m.Client.MetricsV1beta1().PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// Config is what the loop needs.
type Config struct {
	Client   kubernetes.Interface
	Metrics  MetricsClient
	HPAs     autoscalinginformers.HorizontalPodAutoscalerInformer
	Pods     coreinformers.PodInformer
	Recorder record.EventRecorder
	Log      *zap.Logger
	// LoopMetrics are the shared reconcile metrics.
	LoopMetrics *loop.Metrics
	// SyncPeriod is how often each autoscaler is evaluated (default 15s).
	SyncPeriod time.Duration
	// DownscaleStabilization is the scale-down window of autoscalers that
	// set none (default 5m).
	DownscaleStabilization time.Duration
	// Tolerance is the usage ratio's dead band around 1 (default 0.1).
	Tolerance float64
	// CPUInitializationPeriod and InitialReadinessDelay: see ResourceInput
	// (defaults 5m and 30s).
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	// Clock is the time (default the real clock).
	Clock clock.PassiveClock
}

// Controller is the HorizontalPodAutoscaler loop.
type Controller struct {
	cfg    Config
	loop   *loop.Loop
	hpas   autoscalinglisters.HorizontalPodAutoscalerLister
	pods   corelisters.PodLister
	synced []cache.InformerSynced

	mu      sync.Mutex
	history map[string]*History
}

// New wires the loop to its informers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Metrics == nil || cfg.HPAs == nil || cfg.Pods == nil || cfg.Recorder == nil || cfg.Log == nil {
		return nil, errors.New("hpa: Client, Metrics, HPAs, Pods, Recorder and Log are required")
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = 15 * time.Second
	}
	if cfg.DownscaleStabilization < 0 {
		cfg.DownscaleStabilization = 0
	}
	if cfg.Tolerance < 0 {
		cfg.Tolerance = 0.1
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	c := &Controller{
		cfg:     cfg,
		hpas:    cfg.HPAs.Lister(),
		pods:    cfg.Pods.Lister(),
		synced:  []cache.InformerSynced{cfg.HPAs.Informer().HasSynced, cfg.Pods.Informer().HasSynced},
		history: map[string]*History{},
	}
	c.loop = loop.New(Name, c.sync, cfg.LoopMetrics, cfg.Log)
	if _, err := cfg.HPAs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.loop.Enqueue,
		// The loop evaluates every autoscaler each sync period on its own;
		// a change of spec is looked at at once, the loop's own status
		// writes and resyncs are not.
		UpdateFunc: func(oldObj, newObj any) {
			old, okOld := oldObj.(*autoscalingv2.HorizontalPodAutoscaler)
			cur, okCur := newObj.(*autoscalingv2.HorizontalPodAutoscaler)
			if okOld && okCur && old.Generation != cur.Generation {
				c.loop.Enqueue(newObj)
			}
		},
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.mu.Lock()
				delete(c.history, key)
				c.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.Run(ctx, workers, c.synced...)
}

// historyOf returns the autoscaler's remembered recommendations and
// rescales; one worker at a time has a key, so it needs no lock of its own.
func (c *Controller) historyOf(key string) *History {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.history[key]
	if !ok {
		h = &History{}
		c.history[key] = h
	}
	return h
}

func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, loop.Permanent(err)
	}
	cached, err := c.hpas.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.history, key)
		c.mu.Unlock()
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	hpa := cached.DeepCopy()
	if err := c.reconcile(ctx, key, hpa); err != nil {
		if statusErr := c.updateStatus(ctx, cached, hpa); statusErr != nil {
			return 0, errors.Join(err, statusErr)
		}
		return 0, err
	}
	if err := c.updateStatus(ctx, cached, hpa); err != nil {
		return 0, err
	}
	return c.cfg.SyncPeriod, nil
}

// reconcile evaluates hpa (a copy) and rescales its target; hpa's status
// is left for the caller to write.
func (c *Controller) reconcile(ctx context.Context, key string, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	log := c.cfg.Log.With(zap.String("hpa", key))
	ref := hpa.Spec.ScaleTargetRef
	reference := ref.Kind + "/" + ref.Name
	scale, err := c.getScale(ctx, hpa.Namespace, ref)
	if err != nil {
		c.cfg.Recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		setCondition(hpa, c.now(), autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", "the HPA controller was unable to get the target's current scale: %v", err)
		log.Debug("getting scale", zap.String("target", reference), zap.Error(err))
		return nil // status says why; the next period tries again
	}
	setCondition(hpa, c.now(), autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale")

	current := scale.Spec.Replicas
	if h := c.historyOf(key); len(h.Recommendations) == 0 {
		// A new autoscaler, or a new leader: the current size counts as a
		// recommendation, so that the scale-down window holds it instead of
		// collapsing every target on the first sync (Kubernetes'
		// recordInitialRecommendation).
		h.Recommendations = append(h.Recommendations, Recommendation{Replicas: current, At: c.now()})
	}
	minReplicas := ptr.Deref(hpa.Spec.MinReplicas, 1)
	maxReplicas := hpa.Spec.MaxReplicas
	behavior := EffectiveBehavior(hpa.Spec.Behavior, c.cfg.DownscaleStabilization)
	var desired int32
	var reason string
	var statuses []autoscalingv2.MetricStatus
	rescale := true
	switch {
	case current == 0 && minReplicas != 0:
		rescale = false
		setCondition(hpa, c.now(), autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
	case current > maxReplicas:
		reason, desired = "Current number of replicas above Spec.MaxReplicas", maxReplicas
	case current < minReplicas:
		reason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		proposed, metricName, st, err := c.computeReplicas(ctx, hpa, scale, behavior)
		statuses = st
		if proposed < 0 {
			setStatus(hpa, c.now(), current, current, statuses, false)
			c.cfg.Recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			log.Debug("no replica count from the metrics", zap.Error(err))
			return nil
		}
		if err != nil {
			log.Debug("some metrics failed", zap.Error(err))
		}
		switch {
		case proposed > current:
			reason = metricName + " above target"
		case proposed < current:
			reason = "All metrics below target"
		}
		in := NormalizeInput{Current: current, Desired: proposed, Min: minReplicas, Max: maxReplicas, Behavior: behavior, Now: c.now()}
		normalize := Normalize
		if hpa.Spec.Behavior == nil {
			normalize = NormalizeLegacy // as Kubernetes does for an autoscaler without behavior
		}
		d := normalize(c.historyOf(key), in)
		setCondition(hpa, c.now(), autoscalingv2.AbleToScale, corev1.ConditionTrue, d.StabilizeReason, "%s", d.StabilizeMessage)
		limited := corev1.ConditionFalse
		if d.Limited {
			limited = corev1.ConditionTrue
		}
		setCondition(hpa, c.now(), autoscalingv2.ScalingLimited, limited, d.LimitReason, "%s", d.LimitMessage)
		desired = d.Replicas
		rescale = desired != current
	}

	if !rescale {
		setStatus(hpa, c.now(), current, current, statuses, false)
		return nil
	}
	scale.Spec.Replicas = desired
	if err := c.updateScale(ctx, hpa.Namespace, ref, scale); err != nil {
		c.cfg.Recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, reason, err)
		setCondition(hpa, c.now(), autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", "the HPA controller was unable to update the target scale: %v", err)
		setStatus(hpa, c.now(), current, current, statuses, false)
		return fmt.Errorf("rescaling %s to %d: %w", reference, desired, err)
	}
	setCondition(hpa, c.now(), autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to %d", desired)
	c.cfg.Recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, reason)
	c.historyOf(key).RecordScale(behavior, current, desired, c.now())
	log.Info("rescaled", zap.String("target", reference), zap.Int32("from", current), zap.Int32("to", desired), zap.String("reason", reason))
	setStatus(hpa, c.now(), current, desired, statuses, true)
	return nil
}

func (c *Controller) now() time.Time { return c.cfg.Clock.Now() }

// computeReplicas proposes a count per metric and combines them (see
// Combine); -1 means no count could be had, with the reason on the
// ScalingActive condition.
func (c *Controller) computeReplicas(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, scale *autoscalingv1.Scale, behavior Behavior) (int32, string, []autoscalingv2.MetricStatus, error) {
	statuses := make([]autoscalingv2.MetricStatus, len(hpa.Spec.Metrics))
	sel, err := labels.Parse(scale.Status.Selector)
	if err == nil && scale.Status.Selector == "" {
		err = errors.New("the target's scale has no selector")
	}
	if err != nil {
		c.cfg.Recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", err.Error())
		setCondition(hpa, c.now(), autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector: %v", err)
		return -1, "", nil, err
	}
	pods, err := c.pods.Pods(hpa.Namespace).List(sel)
	if err != nil {
		return -1, "", nil, err
	}
	var podMetrics []metricsv1beta1.PodMetrics
	var metricsErr error
	fetched := false
	type failure struct{ reason, msg string }
	var firstFailure *failure
	props := make([]MetricProposal, len(hpa.Spec.Metrics))
	for i, spec := range hpa.Spec.Metrics {
		fail := func(reason string, err error) {
			props[i].Err = err
			if firstFailure == nil {
				firstFailure = &failure{reason, "the HPA was unable to compute the replica count: " + err.Error()}
			}
			c.cfg.Recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
		}
		if spec.Type != autoscalingv2.ResourceMetricSourceType || spec.Resource == nil {
			fail("InvalidMetricSourceType", fmt.Errorf("invalid metric source type %q: only Resource metrics are supported", spec.Type))
			continue
		}
		res := spec.Resource.Name
		t := spec.Resource.Target
		props[i].Name = string(res) + " resource"
		if t.AverageValue == nil {
			props[i].Name = string(res) + " resource utilization (percentage of request)"
		}
		if !fetched {
			podMetrics, metricsErr = c.cfg.Metrics.PodMetrics(ctx, hpa.Namespace, sel)
			fetched = true
		}
		if metricsErr != nil {
			fail("FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: unable to get metrics for resource %s: %w", res, res, metricsErr))
			continue
		}
		in := ResourceInput{
			Resource: res, CurrentReplicas: scale.Spec.Replicas, Pods: pods, Metrics: usageOf(podMetrics, res),
			Tolerance: behavior.Tolerance(c.cfg.Tolerance), CPUInitializationPeriod: c.cfg.CPUInitializationPeriod,
			InitialReadinessDelay: c.cfg.InitialReadinessDelay, Now: c.now(),
		}
		if t.AverageValue != nil {
			in.TargetAverageValue = t.AverageValue
		} else {
			in.TargetUtilization = t.AverageUtilization
		}
		p, err := ResourceReplicas(in)
		if err != nil {
			fail("FailedGetResourceMetric", fmt.Errorf("failed to get %s utilization: %w", res, err))
			continue
		}
		props[i].Replicas = p.Replicas
		statuses[i] = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
			Name: res,
			Current: autoscalingv2.MetricValueStatus{
				AverageUtilization: p.Utilization,
				AverageValue:       resource.NewMilliQuantity(p.AverageValue, resource.DecimalSI),
			},
		}}
	}
	replicas, name, err := Combine(scale.Spec.Replicas, props)
	if replicas < 0 {
		if firstFailure != nil {
			setCondition(hpa, c.now(), autoscalingv2.ScalingActive, corev1.ConditionFalse, firstFailure.reason, "%s", firstFailure.msg)
		}
		return -1, "", statuses, err
	}
	setCondition(hpa, c.now(), autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", name)
	return replicas, name, statuses, err
}

// usageOf sums each pod's containers' usage of res in milli-units; a pod
// where a container lacks it is left out (it counts as missing).
func usageOf(pms []metricsv1beta1.PodMetrics, res corev1.ResourceName) map[string]PodMetric {
	out := make(map[string]PodMetric, len(pms))
	for _, pm := range pms {
		var sum int64
		ok := len(pm.Containers) > 0
		for _, c := range pm.Containers {
			q, found := c.Usage[res]
			if !found {
				ok = false
				break
			}
			sum += q.MilliValue()
		}
		if ok {
			out[pm.Name] = PodMetric{Value: sum, Timestamp: pm.Timestamp.Time, Window: pm.Window.Duration}
		}
	}
	return out
}

// targetKind is the scalable kinds: their group must be apps (an empty
// apiVersion is taken as apps).
func targetKind(ref autoscalingv2.CrossVersionObjectReference) (string, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", fmt.Errorf("invalid apiVersion %q of the scale target: %w", ref.APIVersion, err)
	}
	if (gv.Group == "apps" || ref.APIVersion == "") && (ref.Kind == "Deployment" || ref.Kind == "ReplicaSet") {
		return ref.Kind, nil
	}
	return "", fmt.Errorf("the scale target %s %s/%s has no scale subresource here: only apps Deployments and ReplicaSets are scaled", ref.APIVersion, ref.Kind, ref.Name)
}

func (c *Controller) getScale(ctx context.Context, ns string, ref autoscalingv2.CrossVersionObjectReference) (*autoscalingv1.Scale, error) {
	kind, err := targetKind(ref)
	if err != nil {
		return nil, err
	}
	if kind == "Deployment" {
		return c.cfg.Client.AppsV1().Deployments(ns).GetScale(ctx, ref.Name, metav1.GetOptions{})
	}
	return c.cfg.Client.AppsV1().ReplicaSets(ns).GetScale(ctx, ref.Name, metav1.GetOptions{})
}

// updateScale writes the scale; its resourceVersion makes it a
// compare-and-swap against the scale just read.
func (c *Controller) updateScale(ctx context.Context, ns string, ref autoscalingv2.CrossVersionObjectReference, scale *autoscalingv1.Scale) error {
	kind, err := targetKind(ref)
	if err != nil {
		return err
	}
	if kind == "Deployment" {
		_, err = c.cfg.Client.AppsV1().Deployments(ns).UpdateScale(ctx, ref.Name, scale, metav1.UpdateOptions{})
	} else {
		_, err = c.cfg.Client.AppsV1().ReplicaSets(ns).UpdateScale(ctx, ref.Name, scale, metav1.UpdateOptions{})
	}
	return err
}

// updateStatus writes hpa's status when it differs from the cached one.
func (c *Controller) updateStatus(ctx context.Context, cached, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	if apiequality.Semantic.DeepEqual(cached.Status, hpa.Status) {
		return nil
	}
	_, err := c.cfg.Client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// setStatus records the outcome of a sync.
func setStatus(hpa *autoscalingv2.HorizontalPodAutoscaler, now time.Time, current, desired int32, metrics []autoscalingv2.MetricStatus, rescaled bool) {
	hpa.Status.CurrentReplicas = current
	hpa.Status.DesiredReplicas = desired
	hpa.Status.CurrentMetrics = metrics
	hpa.Status.ObservedGeneration = ptr.To(hpa.Generation)
	if rescaled {
		t := metav1.NewTime(now)
		hpa.Status.LastScaleTime = &t
	}
}

// setCondition sets a condition, moving its transition time only when its
// status changes.
func setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, now time.Time, typ autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for i := range hpa.Status.Conditions {
		c := &hpa.Status.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = metav1.NewTime(now)
		}
		c.Status, c.Reason, c.Message = status, reason, msg
		return
	}
	hpa.Status.Conditions = append(hpa.Status.Conditions, autoscalingv2.HorizontalPodAutoscalerCondition{
		Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(now),
	})
}
