package cacher

import (
	"context"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubeish/kubeish/apiserver/storage"
)

// WatchOptions select what a watch sees.
type WatchOptions struct {
	// Namespace limits the watch to one namespace; "" watches all.
	Namespace string
	// Predicate selects objects (labels, fields); nil selects all. An
	// object that starts matching arrives as ADDED, one that stops matching
	// as DELETED, as in Kubernetes.
	Predicate func(runtime.Object) bool
	// Initial starts the watch with the current objects (Watch.Items) at a
	// revision of at least Revision; otherwise the watch streams every
	// change after Revision.
	Initial  bool
	Revision int64
	// BookmarkEvery is how often a watcher that has caught up gets a
	// Bookmark event with the cache's revision; 0 sends none.
	BookmarkEvery time.Duration
}

// Watch is an open watch on the cache.
type Watch struct {
	// Items are the initial objects (with WatchOptions.Initial) at Revision.
	Items []runtime.Object
	// Revision the stream starts after.
	Revision int64
	// Events are the changes after Revision, already filtered by
	// namespace and predicate. The channel closes when the watch's context
	// ends, when the watcher fell behind the ring, or when the cache
	// reloads; the client then re-watches from the last revision it saw.
	Events <-chan storage.Event

	dropped atomic.Bool
}

// Dropped reports whether the watch was ended because its reader was too
// slow (behind the ring, or its channel full for too long), once Events
// has closed.
func (w *Watch) Dropped() bool { return w.dropped.Load() }

// Watch opens a watch. Without Initial, a Revision older than the cache's
// window answers ErrTooOld (the caller may watch etcd instead, which has
// more history); a Revision the cache has not reached yet is fine: the
// watch skips what comes before it. With Initial it waits for the cache to
// reach Revision, as WaitFresh does.
func (c *Cache) Watch(ctx context.Context, opts WatchOptions) (*Watch, error) {
	if opts.Initial {
		if err := c.WaitFresh(ctx, opts.Revision); err != nil {
			return nil, err
		}
	}
	c.mu.RLock()
	if !c.ready {
		c.mu.RUnlock()
		return nil, ErrNotReady
	}
	w := &watcher{c: c, opts: opts, gen: c.gen, out: make(chan storage.Event, WatchBuffer)}
	out := &Watch{Events: w.out}
	w.w = out
	if opts.Initial {
		prefix := c.res.Prefix(opts.Namespace)
		start, _ := c.find(prefix)
		for i := start; i < len(c.objs) && strings.HasPrefix(c.objs[i].key, prefix); i++ {
			if opts.Predicate == nil || opts.Predicate(c.objs[i].obj) {
				out.Items = append(out.Items, c.objs[i].obj)
			}
		}
		w.cursor, w.after = c.next, c.rev
	} else {
		if opts.Revision < c.oldestRev {
			c.mu.RUnlock()
			c.metrics.watches.WithLabelValues(c.res.Resource, "etcd").Inc()
			return nil, ErrTooOld
		}
		first := c.first()
		n := int(c.next - first)
		i := sort.Search(n, func(i int) bool {
			return c.ring[(first+uint64(i))%uint64(c.capacity)].Revision > opts.Revision
		})
		w.cursor, w.after = first+uint64(i), opts.Revision
	}
	c.mu.RUnlock()
	c.metrics.watches.WithLabelValues(c.res.Resource, "cache").Inc()
	out.Revision = w.after
	go w.run(ctx)
	return out, nil
}

// watcher is one watch's reader of the ring.
type watcher struct {
	c    *Cache
	w    *Watch
	opts WatchOptions
	gen  uint64
	// cursor is the sequence number of the next change to read; after is
	// the revision the watch started after (changes up to it are skipped)
	// and then the revision of the last change or bookmark sent.
	cursor uint64
	after  int64
	out    chan storage.Event
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.out)
	c := w.c
	var bookmarks <-chan time.Time
	if w.opts.BookmarkEvery > 0 {
		t := time.NewTicker(w.opts.BookmarkEvery)
		defer t.Stop()
		bookmarks = t.C
	}
	wantBookmark := false
	batch := make([]storage.Event, 0, 128)
	for {
		batch = batch[:0]
		c.mu.RLock()
		if w.gen != c.gen || w.cursor < c.first() {
			// Reloaded, or overtaken by the ring: changes are lost to this
			// watcher, so it ends rather than skip them.
			overtaken := w.gen == c.gen
			c.mu.RUnlock()
			w.w.dropped.Store(overtaken)
			c.metrics.terminated.WithLabelValues(c.res.Resource).Inc()
			return
		}
		for seq := w.cursor; seq < c.next && len(batch) < cap(batch); seq++ {
			batch = append(batch, c.ring[seq%uint64(c.capacity)])
		}
		w.cursor += uint64(len(batch))
		caughtUp, rev, changed := w.cursor == c.next, c.rev, c.changed
		c.mu.RUnlock()

		for _, ev := range batch {
			if ev.Revision <= w.after {
				continue
			}
			typ, obj := w.filter(ev)
			if typ == "" {
				continue
			}
			if !w.send(ctx, storage.Event{Type: typ, Object: obj, Revision: ev.Revision}) {
				return
			}
			w.after = ev.Revision
		}
		if !caughtUp {
			continue
		}
		if wantBookmark && rev > w.after {
			if !w.send(ctx, storage.Event{Type: watch.Bookmark, Revision: rev}) {
				return
			}
			w.after, wantBookmark = rev, false
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-bookmarks:
			wantBookmark = true
			if rev <= w.after {
				// Nothing new to report yet: let the cache catch up with
				// etcd so the next wake-up has a fresher revision.
				c.requestProgress()
			}
		}
	}
}

// send queues ev for the client, waiting at most the cache's slow-watcher
// timeout for room; false ends the watch.
func (w *watcher) send(ctx context.Context, ev storage.Event) bool {
	select {
	case w.out <- ev:
		return true
	default:
	}
	t := time.NewTimer(w.c.slow)
	defer t.Stop()
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		w.w.dropped.Store(true)
		w.c.metrics.terminated.WithLabelValues(w.c.res.Resource).Inc()
		return false
	}
}

// filter turns a change into what this watcher sees, if anything.
func (w *watcher) filter(ev storage.Event) (watch.EventType, runtime.Object) {
	if w.opts.Namespace != "" {
		m, err := meta.Accessor(ev.Object)
		if err != nil || m.GetNamespace() != w.opts.Namespace {
			return "", nil
		}
	}
	return storage.FilterEvent(ev, w.opts.Predicate)
}

// metrics are the cache's, with Kubernetes' names where it has them.
type metrics struct {
	events     *prometheus.CounterVec
	rev        *prometheus.GaugeVec
	inits      *prometheus.CounterVec
	terminated *prometheus.CounterVec
	lists      *prometheus.CounterVec
	watches    *prometheus.CounterVec
	wait       *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_watch_cache_events_received_total",
			Help: "Changes the watch cache received from etcd, by resource.",
		}, []string{"resource"}),
		rev: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_watch_cache_resource_version",
			Help: "The etcd revision the watch cache reflects, by resource.",
		}, []string{"resource"}),
		inits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_watch_cache_initializations_total",
			Help: "Loads of the watch cache from an etcd list, by resource.",
		}, []string{"resource"}),
		terminated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_terminated_watchers_total",
			Help: "Watchers ended because they fell behind the watch cache, their client stopped reading, or the cache reloaded, by resource.",
		}, []string{"resource"}),
		lists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeish_apiserver_watch_cache_lists_total",
			Help: "Lists that asked the watch cache, by resource and where they were served (cache, or etcd when the cache was not ready or not fresh in time).",
		}, []string{"resource", "source"}),
		watches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeish_apiserver_watch_cache_watches_total",
			Help: "Watches that asked the watch cache, by resource and where they were served (cache, or etcd for a revision older than the cache's window).",
		}, []string{"resource", "source"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubeish_apiserver_watch_cache_fresh_wait_seconds",
			Help:    "How long reads waited for the watch cache to reach the revision they need, by resource.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3},
		}, []string{"resource"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.rev, m.inits, m.terminated, m.lists, m.watches, m.wait} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
