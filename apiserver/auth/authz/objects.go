package authz

import (
	"context"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// objects reads what the authorizer decides on: the RBAC objects on every
// request, pods for the node authorizer. It reads the watch cache when the
// server has one for the resource. Without it, the RBAC objects come from a
// snapshot of the store taken at most snapshotTTL ago (one list per
// resource and TTL, however many requests), and pods from the store, one
// namespace or one key at a time. Objects handed out are shared and must
// not be changed. While the cache (re)loads, reads go to the snapshot or
// the store.
type objects struct {
	store *storage.Store
	cache *cacher.Cacher
	ttl   time.Duration

	mu    sync.Mutex
	snaps map[string]*snapshot
}

type snapshot struct {
	mu    sync.Mutex // held while refreshing
	at    time.Time
	keys  []string
	items []runtime.Object
}

func objKey(res *registry.Resource, obj runtime.Object) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return res.Key(m.GetNamespace(), m.GetName())
}

// list returns the objects of res whose keys start with prefix and that
// match pred (nil matches all). snap allows the snapshot when there is no
// cache (RBAC objects); otherwise the store is read.
func (o *objects) list(ctx context.Context, res *registry.Resource, prefix string, pred func(runtime.Object) bool, snap bool) ([]runtime.Object, error) {
	if c := o.cache.For(res); c != nil {
		r, err := c.List(ctx, prefix, cacher.ListOptions{Predicate: pred})
		if err == nil {
			return r.Items, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Loading: the snapshot, or etcd this once.
	}
	if snap {
		return o.fromSnapshot(ctx, res, prefix, pred)
	}
	r, err := o.store.List(ctx, res.Resource, prefix, res.New, storage.ListOptions{Predicate: pred})
	if err != nil {
		return nil, err
	}
	return r.Items, nil
}

// listFresh is list reflecting at least etcd's current revision: what a
// refusal is checked against again, so that a pod bound a moment ago
// counts.
func (o *objects) listFresh(ctx context.Context, res *registry.Resource, prefix string, pred func(runtime.Object) bool) ([]runtime.Object, error) {
	if c := o.cache.For(res); c != nil {
		rev, err := o.store.Revision(ctx)
		if err != nil {
			return nil, err
		}
		if r, err := c.List(ctx, prefix, cacher.ListOptions{MinRevision: rev, Predicate: pred}); err == nil {
			return r.Items, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	r, err := o.store.List(ctx, res.Resource, prefix, res.New, storage.ListOptions{Predicate: pred})
	if err != nil {
		return nil, err
	}
	return r.Items, nil
}

// get returns one object, or nil when there is none.
func (o *objects) get(ctx context.Context, res *registry.Resource, ns, name string, snap bool) (runtime.Object, error) {
	key := res.Key(ns, name)
	items, err := o.list(ctx, res, key, func(obj runtime.Object) bool { return objKey(res, obj) == key }, snap)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	return items[0], nil
}

// getFresh reads one object from etcd, or nil when there is none.
func (o *objects) getFresh(ctx context.Context, res *registry.Resource, ns, name string) (runtime.Object, error) {
	obj := res.New()
	err := o.store.Get(ctx, res.Resource, res.Key(ns, name), obj)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

func (o *objects) fromSnapshot(ctx context.Context, res *registry.Resource, prefix string, pred func(runtime.Object) bool) ([]runtime.Object, error) {
	o.mu.Lock()
	if o.snaps == nil {
		o.snaps = map[string]*snapshot{}
	}
	s := o.snaps[res.Resource]
	if s == nil {
		s = &snapshot{}
		o.snaps[res.Resource] = s
	}
	o.mu.Unlock()

	s.mu.Lock()
	if time.Since(s.at) > o.ttl {
		r, err := o.store.List(ctx, res.Resource, res.Prefix(""), res.New, storage.ListOptions{})
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.items, s.keys = r.Items, make([]string, len(r.Items))
		for i, obj := range r.Items {
			s.keys[i] = objKey(res, obj)
		}
		s.at = time.Now()
	}
	keys, items := s.keys, s.items
	s.mu.Unlock()

	var out []runtime.Object
	for i, obj := range items {
		if strings.HasPrefix(keys[i], prefix) && (pred == nil || pred(obj)) {
			out = append(out, obj)
		}
	}
	return out, nil
}
