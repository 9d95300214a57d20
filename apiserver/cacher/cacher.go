// Package cacher is the apiserver's watch cache, a simplified form of
// Kubernetes' Cacher. Per resource type, one etcd watch (started at the
// revision of an initial list) keeps the current objects in memory, decoded
// once, and a ring of the most recent changes with their revisions. Lists
// and watches are served from it, so that a thousand clients listing and
// watching pods cost one etcd watch, not a thousand watches and full reads.
//
// Consistency: the cache knows the etcd revision its contents reflect. That
// revision moves with every change and with etcd's progress notifications,
// which the cache asks for on a timer and whenever a reader waits. A read that
// must be at least as new as revision R waits for the cache to reach R
// (briefly; the caller falls back to etcd after FreshTimeout); a consistent
// read takes R from a quorum read of etcd first.
//
// Slow watchers: every watcher reads the one shared ring at its own pace, so
// a slow client never holds up the cache or other watchers, and what is
// queued per watcher is bounded: a channel of WatchBuffer events and one
// batch read from the ring. A watcher is ended, and its client re-watches
// from its last resourceVersion, when the ring has overwritten what it had
// yet to read, or when its channel stayed full for SlowWatcherTimeout (its
// client stopped reading; Kubernetes' cacher likewise waits briefly, then
// terminates the watcher).
package cacher

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// Errors for reads the cache cannot serve; the caller serves them from etcd.
var (
	// ErrNotReady: the cache is (re)loading from etcd.
	ErrNotReady = errors.New("watch cache is not ready")
	// ErrTooOld: a watch from a revision older than the cache's window.
	ErrTooOld = errors.New("resource version is older than the watch cache's window")
	// ErrNotFresh: the cache did not reach the revision asked for in time.
	ErrNotFresh = errors.New("watch cache did not catch up in time")
)

// Defaults for Config's zero values.
const (
	DefaultCapacity         = 4096
	DefaultProgressInterval = 5 * time.Second
	DefaultFreshTimeout     = 3 * time.Second
	DefaultRetryInterval    = time.Second
	// DefaultSlowWatcherTimeout is long enough for a reading client that
	// is briefly descheduled, short enough that a stalled one holds
	// nothing for long.
	DefaultSlowWatcherTimeout = 5 * time.Second
	// WatchBuffer is how many events wait per watcher for its client.
	WatchBuffer = 64
)

// Config is what a Cacher needs.
type Config struct {
	Store *storage.Store
	// Resources are the resource types to cache.
	Resources []*registry.Resource
	Logger    *zap.Logger
	// Registerer receives the cache's metrics; nil skips them.
	Registerer prometheus.Registerer
	// Capacity is how many recent changes each resource keeps: a watch can
	// start from any revision among them, and a watcher may lag this many
	// changes behind before it is ended. Default DefaultCapacity.
	Capacity int
	// ProgressInterval is how often an idle cache asks etcd how far it has
	// got, so that its revision (and the bookmarks it sends) follow etcd's
	// even when nothing of its type changes. Default DefaultProgressInterval.
	ProgressInterval time.Duration
	// FreshTimeout bounds how long a read waits for the cache to reach the
	// revision it needs. Default DefaultFreshTimeout.
	FreshTimeout time.Duration
	// RetryInterval is the pause before reloading after the etcd watch
	// failed. Default DefaultRetryInterval.
	RetryInterval time.Duration
	// SlowWatcherTimeout is how long a watcher's channel may stay full
	// before the watcher is ended. Default DefaultSlowWatcherTimeout.
	SlowWatcherTimeout time.Duration
}

// Cacher holds one Cache per cached resource type.
type Cacher struct {
	caches map[schema.GroupResource]*Cache
	log    *zap.Logger
}

// New returns a Cacher for cfg.Resources; Run loads and keeps it current.
func New(cfg Config) (*Cacher, error) {
	if cfg.Store == nil || cfg.Logger == nil {
		return nil, errors.New("cacher: store and logger are required")
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.FreshTimeout <= 0 {
		cfg.FreshTimeout = DefaultFreshTimeout
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.SlowWatcherTimeout <= 0 {
		cfg.SlowWatcherTimeout = DefaultSlowWatcherTimeout
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Cacher{caches: map[schema.GroupResource]*Cache{}, log: cfg.Logger}
	for _, res := range cfg.Resources {
		c.caches[res.GroupResource()] = &Cache{
			res:      res,
			store:    cfg.Store,
			log:      cfg.Logger.With(zap.String("resource", res.GroupResource().String())),
			metrics:  m,
			capacity: cfg.Capacity,
			progEvry: cfg.ProgressInterval,
			fresh:    cfg.FreshTimeout,
			retry:    cfg.RetryInterval,
			slow:     cfg.SlowWatcherTimeout,
			progress: make(chan struct{}, 1),
			ring:     make([]storage.Event, cfg.Capacity),
			changed:  make(chan struct{}),
		}
	}
	return c, nil
}

// Run loads every cache and keeps it current until ctx ends.
func (c *Cacher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, cache := range c.caches {
		wg.Go(func() { cache.run(ctx) })
	}
	wg.Wait()
}

// For returns the cache of res, or nil when res is not cached.
func (c *Cacher) For(res *registry.Resource) *Cache {
	if c == nil {
		return nil
	}
	return c.caches[res.GroupResource()]
}

// Cache is the watch cache of one resource type. Its methods are safe for
// concurrent use. The objects it hands out are shared by every reader and
// must not be changed.
type Cache struct {
	res      *registry.Resource
	store    *storage.Store
	log      *zap.Logger
	metrics  *metrics
	capacity int
	progEvry time.Duration
	fresh    time.Duration
	retry    time.Duration
	slow     time.Duration
	// progress asks the etcd watch for a progress notification.
	progress chan struct{}

	mu    sync.RWMutex
	ready bool
	// gen counts (re)loads: a watcher of an older generation has lost
	// events and ends.
	gen uint64
	// rev is the etcd revision the cache's contents reflect.
	rev int64
	// objs are the current objects, sorted by key as etcd returns them.
	objs []entry
	// ring holds the changes with sequence numbers [first(), next), at
	// index seq % capacity; base is the first sequence of this generation.
	ring []storage.Event
	next uint64
	base uint64
	// oldestRev: every change after it is in the ring, so a watch from any
	// revision at or after it can be served.
	oldestRev int64
	// changed is closed (and replaced) whenever rev, ring or gen change.
	changed chan struct{}
}

type entry struct {
	key string
	obj runtime.Object
}

func (c *Cache) run(ctx context.Context) {
	for {
		err := c.sync(ctx)
		c.mu.Lock()
		c.ready = false
		c.gen++
		c.broadcastLocked()
		c.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("watch cache lost its etcd watch; reloading", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.retry):
		}
	}
}

// sync loads the cache from a list and applies the etcd watch from the
// list's revision until the watch fails or ctx ends.
func (c *Cache) sync(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefix := c.res.Prefix("")
	list, err := c.store.List(ctx, c.res.Resource, prefix, c.res.New, storage.ListOptions{})
	if err != nil {
		return fmt.Errorf("initial list: %w", err)
	}
	objs := make([]entry, 0, len(list.Items))
	for _, obj := range list.Items {
		c.setKind(obj)
		objs = append(objs, entry{key: c.key(obj), obj: obj})
	}
	c.mu.Lock()
	c.objs, c.rev, c.oldestRev = objs, list.Revision, list.Revision
	c.base = c.next
	c.gen++
	c.ready = true
	c.broadcastLocked()
	c.mu.Unlock()
	c.metrics.inits.WithLabelValues(c.res.Resource).Inc()
	c.metrics.rev.WithLabelValues(c.res.Resource).Set(float64(list.Revision))

	events := c.store.WatchWith(ctx, prefix, list.Revision, c.res.New,
		storage.WatchOptions{ProgressEvery: c.progEvry, Progress: c.progress})
	batch := make([]storage.Event, 0, 256)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return errors.New("etcd watch ended")
			}
			batch = append(batch, ev)
		}
		// Take what else has arrived, so that one lock and one wake-up of
		// the watchers cover a burst.
		closed := false
	drain:
		for len(batch) < cap(batch) {
			select {
			case ev, ok := <-events:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		if err := c.apply(batch); err != nil {
			return err
		}
		if closed {
			return errors.New("etcd watch ended")
		}
	}
}

// apply applies a batch of etcd watch events; an Error event ends it.
func (c *Cache) apply(batch []storage.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.broadcastLocked()
	changes := 0
	for _, ev := range batch {
		switch ev.Type {
		case watch.Error:
			return fmt.Errorf("etcd watch: %w", ev.Err)
		case watch.Bookmark:
			if ev.Revision > c.rev {
				c.rev = ev.Revision
			}
			continue
		}
		changes++
		c.setKind(ev.Object)
		key := c.key(ev.Object)
		i, found := c.find(key)
		switch ev.Type {
		case watch.Added, watch.Modified:
			if found {
				// The object before the change is already in memory: keep
				// that one as Prev rather than a second decoded copy.
				if ev.Type == watch.Modified {
					ev.Prev = c.objs[i].obj
				}
				c.objs[i].obj = ev.Object
			} else {
				c.objs = append(c.objs, entry{})
				copy(c.objs[i+1:], c.objs[i:])
				c.objs[i] = entry{key: key, obj: ev.Object}
			}
		case watch.Deleted:
			if found {
				c.objs = append(c.objs[:i], c.objs[i+1:]...)
			}
		}
		if c.next-c.base >= uint64(c.capacity) {
			c.oldestRev = c.ring[c.next%uint64(c.capacity)].Revision
		}
		c.ring[c.next%uint64(c.capacity)] = ev
		c.next++
		c.rev = ev.Revision
	}
	c.metrics.events.WithLabelValues(c.res.Resource).Add(float64(changes))
	c.metrics.rev.WithLabelValues(c.res.Resource).Set(float64(c.rev))
	return nil
}

func (c *Cache) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// first is the sequence number of the oldest change still in the ring.
func (c *Cache) first() uint64 {
	if c.next-c.base > uint64(c.capacity) {
		return c.next - uint64(c.capacity)
	}
	return c.base
}

func (c *Cache) find(key string) (int, bool) {
	i := sort.Search(len(c.objs), func(i int) bool { return c.objs[i].key >= key })
	return i, i < len(c.objs) && c.objs[i].key == key
}

func (c *Cache) key(obj runtime.Object) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		// Every registered kind has ObjectMeta; this is a programming error.
		panic(err)
	}
	return c.res.Key(m.GetNamespace(), m.GetName())
}

// setKind sets apiVersion and kind once, before the object is shared, so
// that encoding it for a client never writes to it.
func (c *Cache) setKind(obj runtime.Object) {
	if obj.GetObjectKind().GroupVersionKind().Empty() {
		obj.GetObjectKind().SetGroupVersionKind(c.res.GVK())
	}
}

// requestProgress asks etcd for a progress notification, unless a request
// is already pending.
func (c *Cache) requestProgress() {
	select {
	case c.progress <- struct{}{}:
	default:
	}
}

// Revision returns the revision the cache reflects, and whether it is ready.
func (c *Cache) Revision() (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev, c.ready
}

// WaitFresh waits until the cache reflects revision rev or later. It
// returns ErrNotReady at once when the cache is loading, and ErrNotFresh
// when it has not got there within the fresh timeout.
func (c *Cache) WaitFresh(ctx context.Context, rev int64) error {
	var timeout <-chan time.Time
	var tick *time.Ticker
	for {
		c.mu.RLock()
		ready, cur, changed := c.ready, c.rev, c.changed
		c.mu.RUnlock()
		switch {
		case !ready:
			return ErrNotReady
		case cur >= rev:
			return nil
		}
		if tick == nil {
			start := time.Now()
			defer func() { c.metrics.wait.WithLabelValues(c.res.Resource).Observe(time.Since(start).Seconds()) }()
			t := time.NewTimer(c.fresh)
			defer t.Stop()
			timeout = t.C
			// Ask again now and then: etcd answers a progress request only
			// once the watch has caught up, and a request may coincide with
			// one already answered.
			tick = time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
		}
		c.requestProgress()
		select {
		case <-changed:
		case <-tick.C:
		case <-timeout:
			return fmt.Errorf("%w: at %d, want %d", ErrNotFresh, cur, rev)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ListOptions select what List returns.
type ListOptions struct {
	// MinRevision: the list reflects this revision or a later one (waiting
	// for the cache as WaitFresh does); 0 takes the cache as it is.
	MinRevision int64
	// Limit on the number of returned items; 0 is no limit.
	Limit int64
	// Predicate filters objects; nil keeps all.
	Predicate func(runtime.Object) bool
}

// List returns the objects under prefix (a key prefix of the resource, as
// registry.Resource.Prefix makes), in key order, as storage.Store.List
// does. A page's NextKey continues at the page's Revision, which etcd can
// serve: the cache's contents at a revision are etcd's at that revision.
func (c *Cache) List(ctx context.Context, prefix string, opts ListOptions) (*storage.ListResult, error) {
	if err := c.WaitFresh(ctx, opts.MinRevision); err != nil {
		c.metrics.lists.WithLabelValues(c.res.Resource, "etcd").Inc()
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return nil, ErrNotReady
	}
	c.metrics.lists.WithLabelValues(c.res.Resource, "cache").Inc()
	out := &storage.ListResult{Revision: c.rev}
	start, _ := c.find(prefix)
	for i := start; i < len(c.objs) && strings.HasPrefix(c.objs[i].key, prefix); i++ {
		e := c.objs[i]
		if opts.Predicate != nil && !opts.Predicate(e.obj) {
			continue
		}
		out.Items = append(out.Items, e.obj)
		if opts.Limit > 0 && int64(len(out.Items)) == opts.Limit {
			end := sort.Search(len(c.objs), func(j int) bool { return c.objs[j].key >= prefixEnd(prefix) })
			if left := int64(end - i - 1); left > 0 {
				out.NextKey = e.key + "\x00"
				out.Remaining = left
			}
			break
		}
	}
	return out, nil
}

// prefixEnd is the smallest key after every key with prefix; prefixes here
// end in '/', so incrementing the last byte is enough.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

// Cacheable returns the resources worth caching among all: every one but
// those whose objects expire on an etcd lease (Events), which Kubernetes
// does not cache either: they are written often, read rarely, and a cache
// of them would hold what etcd is about to drop.
func Cacheable(all []*registry.Resource) []*registry.Resource {
	var out []*registry.Resource
	for _, r := range all {
		if r.TTL == 0 {
			out = append(out, r)
		}
	}
	return out
}
