// Package endpoints is the Endpoints and EndpointSlices loop: for every
// Service with a selector it keeps an Endpoints object (named as the
// Service) and discovery.k8s.io/v1 EndpointSlices listing the selected
// pods' IPs, ready ones as ready and the others as not ready, with target
// ports resolved per pod. Both go when the Service goes. Services without
// a selector are left to their owners.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeish/kubeish/controller/loop"
)

// Name is the loop's name in logs and metrics.
const Name = "endpoints"

// Config is what the loop needs.
type Config struct {
	Client    kubernetes.Interface
	Services  coreinformers.ServiceInformer
	Pods      coreinformers.PodInformer
	Endpoints coreinformers.EndpointsInformer
	Slices    discoveryinformers.EndpointSliceInformer
	Log       *zap.Logger
	Metrics   *loop.Metrics
}

// Controller is the Endpoints loop.
type Controller struct {
	cfg    Config
	loop   *loop.Loop
	svcs   corelisters.ServiceLister
	pods   corelisters.PodLister
	eps    corelisters.EndpointsLister
	slices discoverylisters.EndpointSliceLister
	synced []cache.InformerSynced
}

// New wires the loop to its informers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Services == nil || cfg.Pods == nil || cfg.Endpoints == nil || cfg.Slices == nil || cfg.Log == nil {
		return nil, errors.New("endpoints: Client, Services, Pods, Endpoints, Slices and Log are required")
	}
	c := &Controller{
		cfg: cfg, svcs: cfg.Services.Lister(), pods: cfg.Pods.Lister(), eps: cfg.Endpoints.Lister(), slices: cfg.Slices.Lister(),
		synced: []cache.InformerSynced{cfg.Services.Informer().HasSynced, cfg.Pods.Informer().HasSynced,
			cfg.Endpoints.Informer().HasSynced, cfg.Slices.Informer().HasSynced},
	}
	c.loop = loop.New(Name, c.sync, cfg.Metrics, cfg.Log)
	if _, err := cfg.Services.Informer().AddEventHandler(c.loop.Handler()); err != nil {
		return nil, err
	}
	if _, err := cfg.Pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Pod), cur.(*corev1.Pod)
			if o.ResourceVersion == n.ResourceVersion {
				return
			}
			c.podChanged(old)
			if !labels.Equals(o.Labels, n.Labels) {
				c.podChanged(cur)
			}
		},
		DeleteFunc: c.podChanged,
	}); err != nil {
		return nil, err
	}
	// A slice or Endpoints changed by someone else is put back.
	owned := cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) { c.enqueueService(cur) },
		DeleteFunc: c.enqueueService,
	}
	if _, err := cfg.Endpoints.Informer().AddEventHandler(owned); err != nil {
		return nil, err
	}
	if _, err := cfg.Slices.Informer().AddEventHandler(owned); err != nil {
		return nil, err
	}
	return c, nil
}

// Run runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.Run(ctx, workers, c.synced...)
}

func (c *Controller) enqueueService(obj any) {
	o, _ := loop.ObjectOf[any](obj)
	switch o := o.(type) {
	case *corev1.Endpoints:
		c.loop.Add(o.Namespace + "/" + o.Name)
	case *discoveryv1.EndpointSlice:
		if o.Labels[ManagedByLabel] == ManagedByValue && o.Labels[ServiceNameLabel] != "" {
			c.loop.Add(o.Namespace + "/" + o.Labels[ServiceNameLabel])
		}
	}
}

// podChanged enqueues the services whose selector matches the pod.
func (c *Controller) podChanged(obj any) {
	p, ok := loop.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	svcs, err := c.svcs.Services(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, s := range svcs {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromValidatedSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
			c.loop.Add(s.Namespace + "/" + s.Name)
		}
	}
}

func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, loop.Permanent(err)
	}
	svc, err := c.svcs.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, c.removeAll(ctx, ns, name)
	}
	if err != nil {
		return 0, err
	}
	if len(svc.Spec.Selector) == 0 {
		return 0, c.syncSlices(ctx, svc, nil, true)
	}
	ps, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return 0, err
	}
	return 0, utilerrors.NewAggregate([]error{c.syncEndpoints(ctx, svc, ps), c.syncSlices(ctx, svc, ps, false)})
}

func (c *Controller) removeAll(ctx context.Context, ns, name string) error {
	var errs []error
	if _, err := c.eps.Endpoints(ns).Get(name); err == nil {
		if err := c.cfg.Client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.deleteSlices(ctx, ns, name, nil))
	return utilerrors.NewAggregate(errs)
}

func (c *Controller) syncEndpoints(ctx context.Context, svc *corev1.Service, ps []*corev1.Pod) error {
	subsets := Subsets(svc, ps)
	cur, err := c.eps.Endpoints(svc.Namespace).Get(svc.Name)
	if apierrors.IsNotFound(err) {
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: maps.Clone(svc.Labels)}, Subsets: subsets}
		if _, err := c.cfg.Client.CoreV1().Endpoints(svc.Namespace).Create(ctx, ep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating endpoints: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if apiequality.Semantic.DeepEqual(cur.Subsets, subsets) && labelsEqual(cur.Labels, svc.Labels) {
		return nil
	}
	ep := cur.DeepCopy()
	ep.Subsets = subsets
	ep.Labels = maps.Clone(svc.Labels)
	if _, err := c.cfg.Client.CoreV1().Endpoints(svc.Namespace).Update(ctx, ep, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating endpoints: %w", err)
	}
	return nil
}

func labelsEqual(a, b map[string]string) bool { return len(a) == len(b) && labels.Equals(a, b) }

// syncSlices makes the service's managed slices exactly the desired ones;
// none is desired for a selector-less Service (only removes).
func (c *Controller) syncSlices(ctx context.Context, svc *corev1.Service, ps []*corev1.Pod, onlyRemove bool) error {
	var want []*discoveryv1.EndpointSlice
	if !onlyRemove {
		want = Slices(svc, ps)
	}
	keep := map[string]bool{}
	var errs []error
	for _, s := range want {
		keep[s.Name] = true
		cur, err := c.slices.EndpointSlices(svc.Namespace).Get(s.Name)
		if apierrors.IsNotFound(err) {
			if _, err := c.cfg.Client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				errs = append(errs, fmt.Errorf("creating endpointslice %s: %w", s.Name, err))
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if apiequality.Semantic.DeepEqual(cur.Endpoints, s.Endpoints) && apiequality.Semantic.DeepEqual(cur.Ports, s.Ports) &&
			cur.AddressType == s.AddressType && labelsEqual(cur.Labels, s.Labels) {
			continue
		}
		up := cur.DeepCopy()
		up.Endpoints, up.Ports, up.Labels, up.OwnerReferences = s.Endpoints, s.Ports, s.Labels, s.OwnerReferences
		if _, err := c.cfg.Client.DiscoveryV1().EndpointSlices(svc.Namespace).Update(ctx, up, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("updating endpointslice %s: %w", s.Name, err))
		}
	}
	errs = append(errs, c.deleteSlices(ctx, svc.Namespace, svc.Name, keep))
	return utilerrors.NewAggregate(errs)
}

// deleteSlices deletes the service's managed slices not in keep.
func (c *Controller) deleteSlices(ctx context.Context, ns, svc string, keep map[string]bool) error {
	sel := labels.SelectorFromSet(labels.Set{ServiceNameLabel: svc, ManagedByLabel: ManagedByValue})
	cur, err := c.slices.EndpointSlices(ns).List(sel)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range cur {
		if keep[s.Name] {
			continue
		}
		if err := c.cfg.Client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return utilerrors.NewAggregate(errs)
}
