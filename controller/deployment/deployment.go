// Package deployment is the Deployment loop: one ReplicaSet per pod
// template (named and labelled by pod-template-hash), rolled by the
// RollingUpdate (maxSurge/maxUnavailable, minReadySeconds) or Recreate
// strategy, revisions in annotations (rollback is a template change back
// to an old revision's template, which brings that ReplicaSet back as the
// newest revision), paused rollouts, proportional scaling of a rollout in
// flight, history cleanup and the Progressing/Available conditions that
// `rollout status` reads.
package deployment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/kubeish/kubeish/controller/loop"
)

// Name is the loop's name in logs, metrics and events.
const Name = "deployment"

// Annotations Kubernetes' tools read and write.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	lastAppliedAnnotation     = "kubectl.kubernetes.io/last-applied-configuration"
)

// Condition reasons, as Kubernetes names them.
const (
	ReasonNewRSAvailable     = "NewReplicaSetAvailable"
	ReasonRSUpdated          = "ReplicaSetUpdated"
	ReasonNewRSCreated       = "NewReplicaSetCreated"
	ReasonFoundNewRS         = "FoundNewReplicaSet"
	ReasonDeadlineExceeded   = "ProgressDeadlineExceeded"
	ReasonPaused             = "DeploymentPaused"
	ReasonResumed            = "DeploymentResumed"
	ReasonMinAvailable       = "MinimumReplicasAvailable"
	ReasonMinUnavailable     = "MinimumReplicasUnavailable"
	ReasonFailedRSCreate     = "ReplicaSetCreateError"
	defaultRevisionHistory   = 10
	progressRequeueTolerance = time.Second
)

var kind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Config is what the loop needs.
type Config struct {
	Client      kubernetes.Interface
	Deployments appsinformers.DeploymentInformer
	ReplicaSets appsinformers.ReplicaSetInformer
	Pods        coreinformers.PodInformer
	Recorder    record.EventRecorder
	Log         *zap.Logger
	Metrics     *loop.Metrics
	Now         func() time.Time
}

// Controller is the Deployment loop.
type Controller struct {
	cfg    Config
	loop   *loop.Loop
	ds     appslisters.DeploymentLister
	rss    appslisters.ReplicaSetLister
	pods   corelisters.PodLister
	synced []cache.InformerSynced
}

// New wires the loop to its informers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Deployments == nil || cfg.ReplicaSets == nil || cfg.Pods == nil || cfg.Recorder == nil || cfg.Log == nil {
		return nil, errors.New("deployment: Client, Deployments, ReplicaSets, Pods, Recorder and Log are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{
		cfg:  cfg,
		ds:   cfg.Deployments.Lister(),
		rss:  cfg.ReplicaSets.Lister(),
		pods: cfg.Pods.Lister(),
		synced: []cache.InformerSynced{cfg.Deployments.Informer().HasSynced, cfg.ReplicaSets.Informer().HasSynced,
			cfg.Pods.Informer().HasSynced},
	}
	c.loop = loop.New(Name, c.sync, cfg.Metrics, cfg.Log)
	if _, err := cfg.Deployments.Informer().AddEventHandler(c.loop.Handler()); err != nil {
		return nil, err
	}
	if _, err := cfg.ReplicaSets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueOwnerOfRS,
		UpdateFunc: func(old, cur any) { c.enqueueOwnerOfRS(old); c.enqueueOwnerOfRS(cur) },
		DeleteFunc: c.enqueueOwnerOfRS,
	}); err != nil {
		return nil, err
	}
	// Recreate waits for old pods to be gone; their deletion is the signal.
	if _, err := cfg.Pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.enqueueOwnerOfPod}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.Run(ctx, workers, c.synced...)
}

func (c *Controller) enqueueOwnerOfRS(obj any) {
	m, ok := loop.ObjectOf[metav1.Object](obj)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(m); ref != nil {
		if ref.Kind == kind.Kind {
			c.loop.Add(m.GetNamespace() + "/" + ref.Name)
		}
		return
	}
	// An orphan: a Deployment that selects it may adopt it.
	ds, err := c.ds.Deployments(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, d := range ds {
		if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(m.GetLabels())) {
			c.loop.Add(d.Namespace + "/" + d.Name)
		}
	}
}

func (c *Controller) enqueueOwnerOfPod(obj any) {
	m, ok := loop.ObjectOf[metav1.Object](obj)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(m)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rss.ReplicaSets(m.GetNamespace()).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == kind.Kind {
		d, err := c.ds.Deployments(rs.Namespace).Get(dref.Name)
		if err == nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			c.loop.Add(d.Namespace + "/" + d.Name)
		}
	}
}

func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, loop.Permanent(err)
	}
	cached, err := c.ds.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return 0, loop.Permanent(fmt.Errorf("selector: %w", err))
	}
	if sel.Empty() {
		c.cfg.Recorder.Event(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		return 0, loop.Permanent(errors.New("empty selector"))
	}
	rsList, err := c.claim(ctx, d, sel)
	if err != nil {
		return 0, err
	}
	if d.DeletionTimestamp != nil {
		newRS, olds := splitReplicaSets(d, rsList)
		return c.syncStatus(ctx, d, newRS, olds, false)
	}
	r := &rollout{c: c, d: d, all: rsList}
	switch {
	case d.Spec.Paused:
		return r.syncOnly(ctx)
	case r.isScalingEvent():
		return r.syncOnly(ctx)
	case d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType:
		return r.recreate(ctx)
	default:
		return r.rolling(ctx)
	}
}

// claim returns the ReplicaSets d owns after adopting matching orphans and
// releasing owned sets that stopped matching.
func (c *Controller) claim(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rss.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var owned []*appsv1.ReplicaSet
	var errs []error
	fresh := false
	for _, rs := range all {
		ref := metav1.GetControllerOf(rs)
		match := sel.Matches(labels.Set(rs.Labels))
		switch {
		case ref != nil && ref.UID == d.UID:
			if match {
				owned = append(owned, rs)
			} else if rs.DeletionTimestamp == nil {
				errs = append(errs, c.patchRS(ctx, rs, map[string]any{"uid": rs.UID,
					"ownerReferences": []map[string]any{{"$patch": "delete", "uid": d.UID}}}))
			}
		case ref == nil && match && rs.DeletionTimestamp == nil && d.DeletionTimestamp == nil:
			if !fresh {
				got, err := c.cfg.Client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
				if err != nil || got.UID != d.UID || got.DeletionTimestamp != nil {
					return owned, err
				}
				fresh = true
			}
			if err := c.patchRS(ctx, rs, map[string]any{"uid": rs.UID,
				"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(d, kind)}}); err != nil {
				errs = append(errs, err)
				continue
			}
			owned = append(owned, rs)
		}
	}
	return owned, utilerrors.NewAggregate(errs)
}

func (c *Controller) patchRS(ctx context.Context, rs *appsv1.ReplicaSet, meta map[string]any) error {
	b, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = c.cfg.Client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, b, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}
