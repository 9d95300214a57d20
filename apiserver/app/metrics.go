package app

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// storeLister lists nodes and pods for the metrics scraper: from the watch
// cache when there is one (30,000 pods decoded from etcd every resolution
// would cost more than the scrape), else straight from the store.
type storeLister struct {
	store *storage.Store
	cache *cacher.Cacher // nil: no watch cache
	res   *registry.Set
}

func listAll[T any](ctx context.Context, l storeLister, resource string) ([]T, error) {
	r, _ := l.res.Get("", resource)
	var result *storage.ListResult
	var err error
	if c := l.cache.For(r); c != nil {
		// As fresh as a quorum read (a pod created just before the round
		// is in it), for the price of one revision read: the cache waits
		// until it has caught up with etcd's current revision.
		if rev, rerr := l.store.Revision(ctx); rerr == nil {
			result, err = c.List(ctx, r.Prefix(""), cacher.ListOptions{MinRevision: rev})
		}
	}
	if result == nil || err != nil {
		// No cache, or it is still loading.
		result, err = l.store.List(ctx, r.Resource, r.Prefix(""), r.New, storage.ListOptions{})
	}
	if err != nil {
		return nil, err
	}
	out := make([]T, len(result.Items))
	for i, o := range result.Items {
		out[i] = o.(T)
	}
	return out, nil
}

// ListNodes implements metricsapi.ObjectLister.
func (l storeLister) ListNodes(ctx context.Context) ([]*corev1.Node, error) {
	return listAll[*corev1.Node](ctx, l, "nodes")
}

// ListPods implements metricsapi.ObjectLister.
func (l storeLister) ListPods(ctx context.Context) ([]*corev1.Pod, error) {
	return listAll[*corev1.Pod](ctx, l, "pods")
}
