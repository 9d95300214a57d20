// Package gc is the garbage collector: it deletes objects whose owners
// (ownerReferences) are all gone, and carries out the propagation policies
// the apiserver records as finalizers on delete: "orphan" (remove the
// owner's references from its dependents, then the finalizer) and
// "foregroundDeletion" (delete the dependents first, then the finalizer).
// Background deletion, the default, needs nothing from the owner: its
// dependents are found orphaned once it is gone.
package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeish/kubeish/controller/loop"
)

// Name is the loop's name in logs and metrics.
const Name = "garbagecollector"

const byOwner = "ownerUID"

// Kind is one resource the collector watches.
type Kind struct {
	GVK        schema.GroupVersionKind
	Resource   string
	Namespaced bool
}

// GVR is the kind's resource.
func (k Kind) GVR() schema.GroupVersionResource { return k.GVK.GroupVersion().WithResource(k.Resource) }

// Kinds are the owners and dependents the collector knows.
var Kinds = []Kind{
	{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: "pods", Namespaced: true},
	{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Service"}, Resource: "services", Namespaced: true},
	{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Endpoints"}, Resource: "endpoints", Namespaced: true},
	{GVK: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Resource: "configmaps", Namespaced: true},
	{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, Resource: "secrets", Namespaced: true},
	{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Node"}, Resource: "nodes"},
	{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Resource: "deployments", Namespaced: true},
	{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}, Resource: "replicasets", Namespaced: true},
	{GVK: schema.GroupVersionKind{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSlice"}, Resource: "endpointslices", Namespaced: true},
}

// Config is what the collector needs.
type Config struct {
	Dynamic   dynamic.Interface
	Informers informers.SharedInformerFactory
	Log       *zap.Logger
	Metrics   *loop.Metrics
	// Kinds to watch; default Kinds.
	Kinds []Kind
}

type watched struct {
	Kind
	informer cache.SharedIndexInformer
}

// Collector is the garbage collector.
type Collector struct {
	cfg    Config
	loop   *loop.Loop
	kinds  []*watched
	byGK   map[schema.GroupKind]*watched
	byRes  map[string]*watched
	synced []cache.InformerSynced

	mu     sync.Mutex
	absent map[types.UID]bool // owners confirmed gone
}

// New wires the collector to an informer per kind. Call before the
// factory starts (it adds an index by owner uid).
func New(cfg Config) (*Collector, error) {
	if cfg.Dynamic == nil || cfg.Informers == nil || cfg.Log == nil {
		return nil, errors.New("gc: Dynamic, Informers and Log are required")
	}
	if cfg.Kinds == nil {
		cfg.Kinds = Kinds
	}
	c := &Collector{cfg: cfg, byGK: map[schema.GroupKind]*watched{}, byRes: map[string]*watched{}, absent: map[types.UID]bool{}}
	c.loop = loop.New(Name, c.sync, cfg.Metrics, cfg.Log)
	for _, k := range cfg.Kinds {
		gi, err := cfg.Informers.ForResource(k.GVR())
		if err != nil {
			return nil, fmt.Errorf("gc: %s: %w", k.Resource, err)
		}
		w := &watched{Kind: k, informer: gi.Informer()}
		if err := w.informer.AddIndexers(cache.Indexers{byOwner: ownerUIDs}); err != nil {
			return nil, fmt.Errorf("gc: index %s: %w", k.Resource, err)
		}
		if _, err := w.informer.AddEventHandler(c.handler(w)); err != nil {
			return nil, err
		}
		c.kinds = append(c.kinds, w)
		c.byGK[k.GVK.GroupKind()] = w
		c.byRes[resKey(k.GVR().GroupResource())] = w
		c.synced = append(c.synced, w.informer.HasSynced)
	}
	return c, nil
}

func resKey(gr schema.GroupResource) string { return gr.String() }

func ownerUIDs(obj any) ([]string, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil
	}
	refs := m.GetOwnerReferences()
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, string(r.UID))
	}
	return out, nil
}

// Run runs workers until ctx ends.
func (c *Collector) Run(ctx context.Context, workers int) error {
	return c.loop.Run(ctx, workers, c.synced...)
}

func (c *Collector) key(w *watched, m metav1.Object) string {
	return resKey(w.GVR().GroupResource()) + "|" + m.GetNamespace() + "/" + m.GetName()
}

func interesting(m metav1.Object) bool {
	if len(m.GetOwnerReferences()) > 0 {
		return true
	}
	return m.GetDeletionTimestamp() != nil && hasGCFinalizer(m)
}

func hasGCFinalizer(m metav1.Object) bool {
	f := m.GetFinalizers()
	return slices.Contains(f, metav1.FinalizerOrphanDependents) || slices.Contains(f, metav1.FinalizerDeleteDependents)
}

func (c *Collector) handler(w *watched) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if m, err := meta.Accessor(obj); err == nil && interesting(m) {
				c.loop.Add(c.key(w, m))
			}
		},
		UpdateFunc: func(oldObj, obj any) {
			o, err1 := meta.Accessor(oldObj)
			m, err2 := meta.Accessor(obj)
			if err1 != nil || err2 != nil {
				return
			}
			changed := !slices.Equal(o.GetFinalizers(), m.GetFinalizers()) ||
				(o.GetDeletionTimestamp() == nil) != (m.GetDeletionTimestamp() == nil) ||
				!ownerRefsEqual(o.GetOwnerReferences(), m.GetOwnerReferences())
			if o.GetResourceVersion() == m.GetResourceVersion() || changed {
				// A change that matters, or a resync: check again.
				if interesting(m) {
					c.loop.Add(c.key(w, m))
				}
			}
		},
		DeleteFunc: func(obj any) {
			m, ok := loop.ObjectOf[metav1.Object](obj)
			if !ok {
				return
			}
			c.mu.Lock()
			if len(c.absent) > 100000 {
				c.absent = map[types.UID]bool{}
			}
			c.absent[m.GetUID()] = true
			c.mu.Unlock()
			// Its dependents may now be orphans.
			for _, d := range c.dependents(m.GetUID()) {
				c.loop.Add(d.key)
			}
			// An owner waiting for it may now finish.
			for _, ref := range m.GetOwnerReferences() {
				if ow, ok := c.byGK[gkOf(ref)]; ok {
					ns := m.GetNamespace()
					if !ow.Namespaced {
						ns = ""
					}
					c.loop.Add(resKey(ow.GVR().GroupResource()) + "|" + ns + "/" + ref.Name)
				}
			}
		},
	}
}

func ownerRefsEqual(a, b []metav1.OwnerReference) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UID != b[i].UID {
			return false
		}
	}
	return true
}

func gkOf(ref metav1.OwnerReference) schema.GroupKind {
	gv, _ := schema.ParseGroupVersion(ref.APIVersion)
	return schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
}

type dependent struct {
	w   *watched
	obj metav1.Object
	key string
}

// dependents lists the cached objects that name uid as an owner.
func (c *Collector) dependents(uid types.UID) []dependent {
	var out []dependent
	for _, w := range c.kinds {
		objs, _ := w.informer.GetIndexer().ByIndex(byOwner, string(uid))
		for _, o := range objs {
			if m, err := meta.Accessor(o); err == nil {
				out = append(out, dependent{w: w, obj: m, key: c.key(w, m)})
			}
		}
	}
	return out
}

func (c *Collector) sync(ctx context.Context, key string) (time.Duration, error) {
	res, nsName, ok := strings.Cut(key, "|")
	w := c.byRes[res]
	if !ok || w == nil {
		return 0, loop.Permanent(fmt.Errorf("bad key %q", key))
	}
	obj, exists, err := w.informer.GetIndexer().GetByKey(strings.TrimPrefix(nsName, "/"))
	if err != nil || !exists {
		return 0, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return 0, loop.Permanent(err)
	}
	if m.GetDeletionTimestamp() != nil {
		f := m.GetFinalizers()
		if slices.Contains(f, metav1.FinalizerOrphanDependents) {
			return 0, c.orphan(ctx, w, m)
		}
		if slices.Contains(f, metav1.FinalizerDeleteDependents) {
			return c.foreground(ctx, w, m)
		}
	}
	if len(m.GetOwnerReferences()) == 0 {
		return 0, nil
	}
	return 0, c.checkOwners(ctx, w, m)
}

// ownerState looks an owner up, in the cache first, then (so a lagging
// cache never causes a delete) in the apiserver.
func (c *Collector) ownerState(ctx context.Context, dep metav1.Object, ref metav1.OwnerReference) (OwnerState, error) {
	ow, ok := c.byGK[gkOf(ref)]
	if !ok {
		return Solid, nil // a kind we cannot see: never assume it gone
	}
	ns := dep.GetNamespace()
	if !ow.Namespaced {
		ns = ""
	}
	state := func(m metav1.Object) OwnerState {
		if m.GetDeletionTimestamp() != nil && slices.Contains(m.GetFinalizers(), metav1.FinalizerDeleteDependents) {
			return Waiting
		}
		return Solid
	}
	k := ref.Name
	if ns != "" {
		k = ns + "/" + ref.Name
	}
	if obj, exists, _ := ow.informer.GetIndexer().GetByKey(k); exists {
		if m, err := meta.Accessor(obj); err == nil && m.GetUID() == ref.UID {
			return state(m), nil
		}
	}
	c.mu.Lock()
	gone := c.absent[ref.UID]
	c.mu.Unlock()
	if gone {
		return Absent, nil
	}
	live, err := c.cfg.Dynamic.Resource(ow.GVR()).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && live.GetUID() != ref.UID) {
		c.mu.Lock()
		c.absent[ref.UID] = true
		c.mu.Unlock()
		return Absent, nil
	}
	if err != nil {
		return Solid, err
	}
	return state(live), nil
}

func (c *Collector) checkOwners(ctx context.Context, w *watched, m metav1.Object) error {
	refs := m.GetOwnerReferences()
	owners := make([]Owner, 0, len(refs))
	for _, ref := range refs {
		st, err := c.ownerState(ctx, m, ref)
		if err != nil {
			return err
		}
		owners = append(owners, Owner{UID: ref.UID, State: st})
	}
	act := Decide(owners, len(c.dependents(m.GetUID())) > 0)
	log := c.cfg.Log.With(zap.String("object", c.key(w, m)))
	switch {
	case len(act.RemoveRefs) > 0:
		log.Debug("removing references to owners that are gone or going", zap.Any("uids", act.RemoveRefs))
		return c.removeRefs(ctx, w, m, act.RemoveRefs)
	case act.Delete:
		if m.GetDeletionTimestamp() != nil {
			return nil // already going
		}
		policy := metav1.DeletePropagationBackground
		if act.Foreground {
			policy = metav1.DeletePropagationForeground
		}
		log.Debug("deleting dependent whose owners are gone", zap.String("propagation", string(policy)))
		uid := m.GetUID()
		err := c.cfg.Dynamic.Resource(w.GVR()).Namespace(m.GetNamespace()).Delete(ctx, m.GetName(), metav1.DeleteOptions{
			PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	return nil
}

func (c *Collector) removeRefs(ctx context.Context, w *watched, m metav1.Object, uids []types.UID) error {
	refs := make([]map[string]any, 0, len(uids))
	for _, u := range uids {
		refs = append(refs, map[string]any{"$patch": "delete", "uid": u})
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": m.GetUID(), "ownerReferences": refs}})
	_, err := c.cfg.Dynamic.Resource(w.GVR()).Namespace(m.GetNamespace()).Patch(ctx, m.GetName(), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// orphan removes m's references from its dependents, then its orphan
// finalizer.
func (c *Collector) orphan(ctx context.Context, w *watched, m metav1.Object) error {
	var errs []error
	for _, d := range c.dependents(m.GetUID()) {
		errs = append(errs, c.removeRefs(ctx, d.w, d.obj, []types.UID{m.GetUID()}))
	}
	if err := utilerrors.NewAggregate(errs); err != nil {
		return err
	}
	return c.removeFinalizer(ctx, w, m, metav1.FinalizerOrphanDependents)
}

// foreground deletes m's dependents and, once none that blocks its
// deletion is left, removes its foregroundDeletion finalizer.
func (c *Collector) foreground(ctx context.Context, w *watched, m metav1.Object) (time.Duration, error) {
	blocking := 0
	var errs []error
	for _, d := range c.dependents(m.GetUID()) {
		for _, ref := range d.obj.GetOwnerReferences() {
			if ref.UID == m.GetUID() && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				blocking++
			}
		}
		if d.obj.GetDeletionTimestamp() == nil {
			c.loop.Add(d.key) // its owner is Waiting now: it goes
		}
	}
	if blocking > 0 {
		// Dependents' deletions enqueue m again; the requeue covers a
		// dependent stuck with another owner.
		return 5 * time.Second, utilerrors.NewAggregate(errs)
	}
	return 0, c.removeFinalizer(ctx, w, m, metav1.FinalizerDeleteDependents)
}

func (c *Collector) removeFinalizer(ctx context.Context, w *watched, m metav1.Object, name string) error {
	keep := slices.DeleteFunc(slices.Clone(m.GetFinalizers()), func(f string) bool { return f == name })
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid": m.GetUID(), "resourceVersion": m.GetResourceVersion(), "finalizers": keep}})
	_, err := c.cfg.Dynamic.Resource(w.GVR()).Namespace(m.GetNamespace()).Patch(ctx, m.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
