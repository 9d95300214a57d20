package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	schedcache "github.com/kubeish/kubeish/scheduler/cache"
	"github.com/kubeish/kubeish/scheduler/framework"
	"github.com/kubeish/kubeish/scheduler/queue"
)

// Config is what a Scheduler needs; everything comes in from outside.
type Config struct {
	Client kubernetes.Interface
	// PodInformer lists and watches all pods; NodeInformer all nodes. The
	// scheduler adds its handlers; the caller starts the informers.
	PodInformer  toolscache.SharedIndexInformer
	NodeInformer toolscache.SharedIndexInformer
	Framework    *framework.Framework
	Recorder     record.EventRecorder
	Registry     prometheus.Registerer
	Log          *zap.Logger
	// SchedulerName: only pods with this spec.schedulerName are scheduled.
	SchedulerName string
	// MaxInflightBinds bounds concurrent binding (and status) calls.
	MaxInflightBinds int
	// Queue configures backoff; its PluginEvents are filled from the
	// framework's filters.
	Queue queue.Config
	// AssumeTTL: how long a bound pod may wait for the watch to confirm it.
	AssumeTTL time.Duration
}

// Scheduler binds pending pods to nodes: one goroutine pops a pod, runs
// the framework on a snapshot of the cache, assumes the pod on the chosen
// node and hands the binding to a bounded pool of goroutines, then goes on
// with the next pod while the binding is in flight.
type Scheduler struct {
	cfg      Config
	log      *zap.Logger
	queue    *queue.PriorityQueue
	cache    *schedcache.Cache
	snapshot *framework.Snapshot
	metrics  *schedulerMetrics
	sem      chan struct{}
	wg       sync.WaitGroup
	// running is closed while the scheduling loop runs (for tests).
	running chan struct{}
}

// NewScheduler returns a Scheduler and registers its event handlers on the
// informers (call it before starting them).
func NewScheduler(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil || cfg.PodInformer == nil || cfg.NodeInformer == nil || cfg.Framework == nil {
		return nil, errors.New("scheduler: Client, PodInformer, NodeInformer and Framework are required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{}
	}
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = v1.DefaultSchedulerName
	}
	if cfg.MaxInflightBinds <= 0 {
		cfg.MaxInflightBinds = 64
	}
	if cfg.AssumeTTL <= 0 {
		cfg.AssumeTTL = 30 * time.Second
	}
	if cfg.Queue.PluginEvents == nil {
		cfg.Queue.PluginEvents = map[string]framework.ClusterEvent{}
		for _, p := range cfg.Framework.Filters() {
			if e, ok := p.(framework.EnqueueExtensions); ok {
				cfg.Queue.PluginEvents[p.Name()] = e.EventsToRegister()
			}
		}
	}
	s := &Scheduler{
		cfg:      cfg,
		log:      cfg.Log,
		queue:    queue.New(cfg.Queue),
		cache:    schedcache.New(cfg.AssumeTTL, cfg.Queue.Clock),
		snapshot: &framework.Snapshot{},
		sem:      make(chan struct{}, cfg.MaxInflightBinds),
		running:  make(chan struct{}),
	}
	s.metrics = newMetrics(cfg.Registry, s.queue)
	if _, err := cfg.PodInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onPodAdd(obj.(*v1.Pod)) },
		UpdateFunc: func(o, n any) { s.onPodUpdate(o.(*v1.Pod), n.(*v1.Pod)) },
		DeleteFunc: s.onPodDelete,
	}); err != nil {
		return nil, err
	}
	if _, err := cfg.NodeInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onNodeAdd(obj.(*v1.Node)) },
		UpdateFunc: func(o, n any) { s.onNodeUpdate(o.(*v1.Node), n.(*v1.Node)) },
		DeleteFunc: s.onNodeDelete,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Run schedules until ctx ends, then waits for the bindings in flight.
func (s *Scheduler) Run(ctx context.Context) {
	s.metrics.leader.Set(1)
	defer s.metrics.leader.Set(0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.queue.Run(ctx)
	go s.cache.Run(ctx, time.Second)
	close(s.running)
	s.log.Info("scheduling")
	for s.scheduleOne(ctx) {
	}
	s.wg.Wait()
}

// --- informer handlers: they only update the cache and the queue -------

func assigned(p *v1.Pod) bool { return p.Spec.NodeName != "" }

func terminal(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

// pending is a pod this scheduler should place.
func (s *Scheduler) pending(p *v1.Pod) bool {
	return !assigned(p) && !terminal(p) && p.DeletionTimestamp == nil && p.Spec.SchedulerName == s.cfg.SchedulerName
}

func (s *Scheduler) onPodAdd(p *v1.Pod) {
	switch {
	case assigned(p):
		if !terminal(p) {
			s.cache.AddPod(p)
		}
	case s.pending(p):
		s.queue.Add(p)
	}
}

func (s *Scheduler) onPodUpdate(old, p *v1.Pod) {
	if assigned(p) {
		switch {
		case terminal(p):
			// A finished pod no longer uses its node.
			s.cache.RemovePod(p)
			if !terminal(old) {
				s.queue.MoveAllToActiveOrBackoffQueue(framework.AssignedPodDelete)
			}
		case !assigned(old):
			s.queue.Delete(p)
			s.cache.AddPod(p)
		default:
			s.cache.UpdatePod(old, p)
		}
		return
	}
	if !s.pending(p) {
		s.queue.Delete(p)
		return
	}
	if s.cache.IsAssumed(p.Namespace + "/" + p.Name) {
		// Its binding is in flight; the update is not a reason to try again.
		return
	}
	s.queue.Update(old, p)
}

func (s *Scheduler) onPodDelete(obj any) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		tomb, ok := obj.(toolscache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if p, ok = tomb.Obj.(*v1.Pod); !ok {
			return
		}
	}
	if assigned(p) {
		s.cache.RemovePod(p)
		s.queue.MoveAllToActiveOrBackoffQueue(framework.AssignedPodDelete)
		return
	}
	s.queue.Delete(p)
}

func (s *Scheduler) onNodeAdd(n *v1.Node) {
	s.cache.AddNode(n)
	s.queue.MoveAllToActiveOrBackoffQueue(framework.NodeAdd)
}

func (s *Scheduler) onNodeUpdate(old, n *v1.Node) {
	s.cache.UpdateNode(old, n)
	if ev := nodeEvents(old, n); ev != 0 {
		s.queue.MoveAllToActiveOrBackoffQueue(ev)
	}
}

func (s *Scheduler) onNodeDelete(obj any) {
	n, ok := obj.(*v1.Node)
	if !ok {
		tomb, ok := obj.(toolscache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if n, ok = tomb.Obj.(*v1.Node); !ok {
			return
		}
	}
	s.cache.RemoveNode(n)
}

// nodeEvents says what changed in a node update that could make a pod fit;
// heartbeats (condition timestamps) are no event, so they cause no retries.
func nodeEvents(old, n *v1.Node) framework.ClusterEvent {
	var ev framework.ClusterEvent
	if !apiequality.Semantic.DeepEqual(old.Status.Allocatable, n.Status.Allocatable) {
		ev |= framework.NodeAllocatableChange
	}
	if !apiequality.Semantic.DeepEqual(old.Labels, n.Labels) {
		ev |= framework.NodeLabelChange
	}
	if !apiequality.Semantic.DeepEqual(old.Spec.Taints, n.Spec.Taints) {
		ev |= framework.NodeTaintChange
	}
	if old.Spec.Unschedulable != n.Spec.Unschedulable || readyStatus(old) != readyStatus(n) {
		ev |= framework.NodeConditionChange
	}
	return ev
}

func readyStatus(n *v1.Node) v1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

// --- the scheduling cycle ----------------------------------------------

// current returns the informer's latest version of a queued pod, or nil if
// it is gone, was replaced, got bound or is being deleted.
func (s *Scheduler) current(pod *v1.Pod) *v1.Pod {
	obj, ok, err := s.cfg.PodInformer.GetIndexer().GetByKey(pod.Namespace + "/" + pod.Name)
	if err != nil || !ok {
		return nil
	}
	cur := obj.(*v1.Pod)
	if cur.UID != pod.UID || !s.pending(cur) {
		return nil
	}
	return cur
}

// scheduleOne runs one scheduling cycle; false when the queue is closed.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	qp := s.queue.Pop()
	if qp == nil {
		return false
	}
	cycle := s.queue.SchedulingCycle()
	pod := qp.Pod
	if s.current(pod) == nil || s.cache.IsAssumed(qp.Key) {
		return true
	}
	start := time.Now()
	s.cache.UpdateSnapshot(s.snapshot)
	res, err := s.cfg.Framework.Schedule(ctx, qp.PodInfo, s.snapshot)
	s.metrics.algorithm.Observe(time.Since(start).Seconds())
	if err != nil {
		s.handleFailure(ctx, qp, cycle, err, start)
		return true
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = res.SuggestedHost
	pi := *qp.PodInfo
	pi.Pod = assumed
	if err := s.cache.AssumePod(&pi); err != nil {
		// Only a duplicate of a pod already in flight gets here.
		s.log.Debug("not assuming pod", zap.String("pod", qp.Key), zap.Error(err))
		return true
	}
	if !s.acquire(ctx) {
		s.cache.ForgetPod(qp.Key)
		return false
	}
	go s.bind(ctx, qp, cycle, res.SuggestedHost, start)
	return true
}

// acquire takes a slot in the pool of in-flight calls.
func (s *Scheduler) acquire(ctx context.Context) bool {
	select {
	case s.sem <- struct{}{}:
		s.wg.Add(1)
		s.metrics.inflightBinds.Inc()
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Scheduler) release() {
	s.metrics.inflightBinds.Dec()
	<-s.sem
	s.wg.Done()
}

func (s *Scheduler) bind(ctx context.Context, qp *queue.QueuedPodInfo, cycle int64, node string, start time.Time) {
	defer s.release()
	pod := qp.Pod
	b := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: node},
	}
	bstart := time.Now()
	err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	s.metrics.binding.Observe(time.Since(bstart).Seconds())
	if err != nil {
		s.cache.ForgetPod(qp.Key)
		// The room it held is free again.
		s.queue.MoveAllToActiveOrBackoffQueue(framework.AssignedPodDelete)
		s.metrics.attempts.WithLabelValues(resultError).Inc()
		s.metrics.attemptDuration.WithLabelValues(resultError).Observe(time.Since(start).Seconds())
		if ctx.Err() != nil {
			return
		}
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Deleted, replaced or bound by someone else: the informer
			// brings the news; nothing to retry.
			s.log.Debug("binding refused", zap.String("pod", qp.Key), zap.String("node", node), zap.Error(err))
			return
		}
		s.log.Info("binding failed", zap.String("pod", qp.Key), zap.String("node", node), zap.Error(err))
		s.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		qp.UnschedulablePlugins = nil
		if s.current(pod) != nil {
			s.queue.AddUnschedulableIfNotPresent(qp, cycle)
		}
		return
	}
	s.cache.FinishBinding(qp.Key)
	s.metrics.attempts.WithLabelValues(resultScheduled).Inc()
	s.metrics.attemptDuration.WithLabelValues(resultScheduled).Observe(time.Since(start).Seconds())
	s.metrics.e2e.Observe(time.Since(qp.FirstEnqueued).Seconds())
	s.log.Debug("bound", zap.String("pod", qp.Key), zap.String("node", node))
	s.cfg.Recorder.Eventf(pod, v1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node)
}

// handleFailure puts the pod back in the queue (unschedulable pods wait
// for an event, errors back off), then records why on the pod: the
// PodScheduled=False condition and a FailedScheduling Event.
func (s *Scheduler) handleFailure(ctx context.Context, qp *queue.QueuedPodInfo, cycle int64, err error, start time.Time) {
	reason, result := v1.PodReasonUnschedulable, resultUnschedulable
	var fe *framework.FitError
	if errors.As(err, &fe) {
		qp.UnschedulablePlugins = fe.Diagnosis.UnschedulablePlugins
	} else {
		reason, result = v1.PodReasonSchedulerError, resultError
		qp.UnschedulablePlugins = nil
		s.log.Info("scheduling error", zap.String("pod", qp.Key), zap.Error(err))
	}
	s.metrics.attempts.WithLabelValues(result).Inc()
	s.metrics.attemptDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	cur := s.current(qp.Pod)
	if cur == nil {
		return
	}
	// Requeue first: the status write below comes back as an update event,
	// which must find the pod waiting.
	s.queue.AddUnschedulableIfNotPresent(qp, cycle)
	msg := err.Error()
	s.log.Debug("unschedulable", zap.String("pod", qp.Key), zap.String("reason", msg))
	s.cfg.Recorder.Event(cur, v1.EventTypeWarning, "FailedScheduling", msg)
	if hasCondition(cur, reason, msg) {
		return
	}
	if !s.acquire(ctx) {
		return
	}
	go func() {
		defer s.release()
		if err := s.setUnschedulable(ctx, cur, reason, msg); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
			s.log.Info("writing PodScheduled condition", zap.String("pod", qp.Key), zap.Error(err))
		}
	}()
}

func hasCondition(p *v1.Pod, reason, msg string) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled {
			return c.Status == v1.ConditionFalse && c.Reason == reason && c.Message == msg
		}
	}
	return false
}

// setUnschedulable writes PodScheduled=False with a strategic merge patch
// of pods/status (conditions merge by type).
func (s *Scheduler) setUnschedulable(ctx context.Context, p *v1.Pod, reason, msg string) error {
	patch := map[string]any{
		"status": map[string]any{"conditions": []v1.PodCondition{{
			Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: reason, Message: msg,
			LastTransitionTime: metav1.Now(),
		}}},
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding patch: %w", err)
	}
	_, err = s.cfg.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}, "status")
	return err
}
