// Package namespace is the namespace deletion loop: a namespace being
// deleted has every object in it deleted, and once nothing is left its
// "kubernetes" finalizer is removed through namespaces/{name}/finalize, so
// the apiserver removes the namespace.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeish/kubeish/controller/loop"
)

// Name is the loop's name in logs and metrics.
const Name = "namespace"

// Resources are the namespaced kinds the apiserver serves, deleted in this
// order (owners before their dependents, so no controller recreates what
// was just deleted; events last, so the story stays readable).
var Resources = []schema.GroupVersionResource{
	{Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Version: "v1", Resource: "pods"},
	{Version: "v1", Resource: "services"},
	{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
	{Version: "v1", Resource: "endpoints"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"},
	// Access last: a namespace made again with the same name must not
	// inherit the bindings of the one deleted.
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Version: "v1", Resource: "events"},
}

// Config is what the loop needs.
type Config struct {
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Namespaces coreinformers.NamespaceInformer
	Log        *zap.Logger
	Metrics    *loop.Metrics
	// Resources to empty; default Resources.
	Resources []schema.GroupVersionResource
	// RecheckPeriod is how soon to look again while content remains
	// (default 1s).
	RecheckPeriod time.Duration
}

// Controller is the namespace loop.
type Controller struct {
	cfg    Config
	loop   *loop.Loop
	nss    corelisters.NamespaceLister
	synced cache.InformerSynced
}

// New wires the loop to its informer.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Namespaces == nil || cfg.Log == nil {
		return nil, errors.New("namespace: Client, Dynamic, Namespaces and Log are required")
	}
	if cfg.Resources == nil {
		cfg.Resources = Resources
	}
	if cfg.RecheckPeriod <= 0 {
		cfg.RecheckPeriod = time.Second
	}
	c := &Controller{cfg: cfg, nss: cfg.Namespaces.Lister(), synced: cfg.Namespaces.Informer().HasSynced}
	c.loop = loop.New(Name, c.sync, cfg.Metrics, cfg.Log)
	if _, err := cfg.Namespaces.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, obj any) { c.loop.Enqueue(obj) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.Run(ctx, workers, c.synced)
}

func (c *Controller) sync(ctx context.Context, name string) (time.Duration, error) {
	ns, err := c.nss.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return 0, nil
	}
	log := c.cfg.Log.With(zap.String("namespace", name))
	remaining, err := c.deleteContent(ctx, name)
	if err != nil {
		return 0, err
	}
	if len(remaining) > 0 {
		log.Debug("waiting for content to go", zap.Strings("remaining", remaining))
		return c.cfg.RecheckPeriod, nil
	}
	cp := ns.DeepCopy()
	cp.Spec.Finalizers = slices.DeleteFunc(cp.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := c.cfg.Client.CoreV1().Namespaces().Finalize(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("finalizing: %w", err)
	}
	log.Info("namespace emptied and finalized")
	return 0, nil
}

// deleteContent deletes every object of every resource in ns and returns
// the resources that still hold objects (graceful pods, finalizers).
func (c *Controller) deleteContent(ctx context.Context, ns string) ([]string, error) {
	var remaining []string
	var errs []error
	for _, gvr := range c.cfg.Resources {
		ri := c.cfg.Dynamic.Resource(gvr).Namespace(ns)
		list, err := ri.List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %w", gvr.Resource, err))
			continue
		}
		if len(list.Items) == 0 {
			continue
		}
		pending := false
		for _, item := range list.Items {
			if item.GetDeletionTimestamp() == nil {
				pending = true
			}
		}
		if pending {
			bg := metav1.DeletePropagationBackground
			if err := ri.DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting %s: %w", gvr.Resource, err))
				continue
			}
			list, err = ri.List(ctx, metav1.ListOptions{})
			if err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if len(list.Items) > 0 {
			remaining = append(remaining, fmt.Sprintf("%s: %d", gvr.Resource, len(list.Items)))
		}
	}
	return remaining, utilerrors.NewAggregate(errs)
}
