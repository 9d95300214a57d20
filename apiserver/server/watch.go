package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// Bounds of a watch. A slow client is dropped rather than buffered for
// without bound: its events wait in a buffer of at most watchBuffer (the
// watch cache's own, or watchBuffer after an etcd watch), the watch ends when
// that buffer stays full for watchSlowTimeout, and every write to the
// network must finish within watchWriteTimeout, so a client that stops
// reading is cut off even while its buffer drains into the socket. Ended
// watches are counted in kubeish_apiserver_watch_dropped_total; the client
// re-watches from the last resourceVersion it saw, as client-go does.
const (
	// defaultWatchTimeout bounds a watch whose client set no
	// timeoutSeconds and whose context carries no deadline (the apiserver's
	// filters set one from --min-request-timeout); each watch lasts a
	// random time in [1x, 2x) of it, so that re-watches spread out.
	defaultWatchTimeout = 30 * time.Minute
	watchBuffer         = cacher.WatchBuffer
	watchSlowTimeout    = cacher.DefaultSlowWatcherTimeout
	// watchWriteTimeout: a write of one event (or the flush of a few) that
	// takes this long means the client has stopped reading; loopback and
	// LAN clients that read take microseconds.
	watchWriteTimeout = 10 * time.Second
)

// watchEncoder writes watch events in the negotiated stream format: the
// object encoded by the media type's serializer, wrapped in a WatchEvent
// and framed (newline-delimited JSON, length-prefixed protobuf).
type watchEncoder struct {
	s       *Server
	info    runtime.SerializerInfo
	w       http.ResponseWriter
	flusher *http.ResponseController
	// table: each object is sent as a one-row Table (as=Table), the
	// column definitions with the first one only, as Kubernetes does.
	table   bool
	include includeObject
	kind    string
	columns bool
}

func (e *watchEncoder) send(typ watch.EventType, obj runtime.Object) error {
	if e.table && typ != watch.Error {
		var items []runtime.Object
		if typ != watch.Bookmark {
			items = []runtime.Object{obj}
		}
		t, err := e.s.toTable(e.kind, items, e.include, time.Now())
		if err != nil {
			return err
		}
		t.ResourceVersion = accessor(obj).GetResourceVersion()
		if e.columns {
			t.ColumnDefinitions = nil
		}
		e.columns = true
		obj = t
	}
	if err := e.s.codecs.setKind(obj); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := e.info.Serializer.Encode(obj, &buf); err != nil {
		return err
	}
	ev := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: buf.Bytes()}}
	return writeChunk(e.flusher, func() error {
		return e.info.StreamSerializer.Serializer.Encode(ev, e.info.StreamSerializer.Framer.NewFrameWriter(e.w))
	})
}

// writeChunk writes one piece of a stream (a watch event, a block of a log)
// and flushes it under a write deadline of watchWriteTimeout, so that a
// client that stopped reading is cut off instead of holding the stream. The
// deadline covers this write only and is cleared afterwards: on HTTP/2 a
// stream's write deadline fires even while nothing is being written, and
// would reset an idle stream.
func writeChunk(rc *http.ResponseController, write func() error) error {
	if err := rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	if err := rc.Flush(); err != nil {
		return err
	}
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// watch streams the changes of a resource, as Kubernetes' watch does:
// every change after resourceVersion, or (resourceVersion "" or "0", or
// sendInitialEvents=true) the current objects as ADDED first.
func (s *Server) watch(req *request, p *listParams) error {
	acc, err := s.codecs.negotiate(req.r, true)
	if err != nil {
		return err
	}
	var inc includeObject
	if acc.table {
		if inc, err = parseIncludeObject(req.r.URL.Query().Get("includeObject")); err != nil {
			return err
		}
	}
	if acc.info.StreamSerializer == nil {
		return apierrors.NewBadRequest(fmt.Sprintf("%s does not support watch streams", acc.info.MediaType))
	}
	if p.sendInitialEvents != nil && *p.sendInitialEvents && !p.allowBookmarks {
		return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "", field.ErrorList{
			field.Forbidden(field.NewPath("allowWatchBookmarks"), "allowWatchBookmarks must be true when sendInitialEvents is set")})
	}
	ctx := req.r.Context()
	timeout := p.timeout
	if _, ok := ctx.Deadline(); timeout == 0 && !ok {
		timeout = time.Duration(float64(defaultWatchTimeout) * (1 + rand.Float64()))
	}
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		// The earlier of this and the context's own deadline.
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	prefix := req.res.Prefix(req.namespace)
	match := p.matches(req.res)
	initial := p.resourceVersion == "" || p.resourceVersion == "0"
	if p.sendInitialEvents != nil {
		initial = *p.sendInitialEvents
	}
	var progress time.Duration
	if p.allowBookmarks {
		progress = s.cfg.BookmarkInterval
	}
	var rev int64
	var items []runtime.Object
	var events <-chan storage.Event
	// dropped reports, once events has closed, whether the watch was ended
	// for a slow client.
	var dropped func() bool
	cached, err := s.watchFromCache(ctx, req, p, initial, match, progress)
	if err != nil {
		return err
	}
	if cached != nil {
		// The cache filtered the events already, and bounds what it
		// queues for this watcher.
		rev, items, events, match = cached.Revision, cached.Items, cached.Events, nil
		dropped = cached.Dropped
	} else {
		if rev, items, err = s.watchStartFromStore(ctx, req, p, initial, match); err != nil {
			return err
		}
		// Unread events would pile up in the etcd client's own unbounded
		// buffer behind the store's channel: keep that channel drained
		// into a bounded one instead.
		watchCtx, stop := context.WithCancel(ctx)
		defer stop()
		b := newBoundedEvents(watchCtx, s.store.Watch(watchCtx, prefix, rev, req.res.New, progress), watchBuffer, watchSlowTimeout)
		events, dropped = b.out, b.dropped.Load
	}
	defer func() {
		if dropped() {
			s.metrics.watchDropped.WithLabelValues(req.res.Resource).Inc()
		}
	}()

	s.metrics.longRunning.WithLabelValues("WATCH", req.res.Resource).Inc()
	defer s.metrics.longRunning.WithLabelValues("WATCH", req.res.Resource).Dec()

	ct := acc.info.MediaType
	if ct != mediaJSON {
		ct += ";stream=watch"
	}
	req.w.Header().Set("Content-Type", ct)
	req.w.Header().Set("Cache-Control", "no-cache, private")
	req.w.WriteHeader(http.StatusOK)
	enc := &watchEncoder{s: s, info: acc.info, w: req.w, flusher: http.NewResponseController(req.w), table: acc.table, include: inc, kind: req.res.Kind}
	if req.r.ProtoMajor == 1 {
		// On HTTP/1.1, net/http writes the stream's last chunk after the
		// handler returns: bound that write too (net/http clears the
		// deadline before the connection's next request). An HTTP/2
		// stream ends without another write of ours.
		defer func() { _ = enc.flusher.SetWriteDeadline(time.Now().Add(watchWriteTimeout)) }()
	}
	// A write that timed out is a client that stopped reading.
	writeFailed := func(err error) error {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			dropped = func() bool { return true }
		}
		return nil
	}
	if err := enc.flusher.Flush(); err != nil {
		return writeFailed(err)
	}
	for _, obj := range items {
		if err := enc.send(watch.Added, obj); err != nil {
			return writeFailed(err)
		}
	}
	if p.sendInitialEvents != nil && *p.sendInitialEvents {
		if err := enc.send(watch.Bookmark, s.bookmark(req, rev, true)); err != nil {
			return writeFailed(err)
		}
	}
	for {
		var ev storage.Event
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ev, ok = <-events:
			if !ok || dropped() {
				// Dropped: what is still queued is not worth writing to a
				// client that cannot keep up.
				return nil
			}
		}
		typ, obj := storage.FilterEvent(ev, match)
		switch typ {
		case "":
			continue
		case watch.Bookmark:
			obj = s.bookmark(req, ev.Revision, false)
		case watch.Error:
			status := s.errorStatus(ev.Err)
			obj = &status
		}
		if err := enc.send(typ, obj); err != nil {
			return writeFailed(err)
		}
		if typ == watch.Error {
			return nil
		}
	}
}

// boundedEvents drains a store watch into a channel of bounded size, and
// ends the watch (cancelling the store's) when that channel stays full for
// longer than a grace period: the watcher's client is not keeping up.
type boundedEvents struct {
	out     chan storage.Event
	dropped atomic.Bool
}

func newBoundedEvents(ctx context.Context, in <-chan storage.Event, size int, grace time.Duration) *boundedEvents {
	b := &boundedEvents{out: make(chan storage.Event, size)}
	go func() {
		defer close(b.out)
		var t *time.Timer
		for ev := range in {
			select {
			case b.out <- ev:
				continue
			default:
			}
			if t == nil {
				t = time.NewTimer(grace)
				defer t.Stop()
			} else {
				t.Reset(grace)
			}
			select {
			case b.out <- ev:
				t.Stop()
			case <-ctx.Done():
				return
			case <-t.C:
				b.dropped.Store(true)
				// Closing out ends the stream; the caller's cancel then
				// ends the store's watch, which closes in.
				return
			}
		}
	}()
	return b
}

// watchStartFromStore reads from etcd where a watch starts: its revision
// and, for initial events, the objects at it.
func (s *Server) watchStartFromStore(ctx context.Context, req *request, p *listParams, initial bool, match func(runtime.Object) bool) (int64, []runtime.Object, error) {
	prefix := req.res.Prefix(req.namespace)
	if initial && (p.resourceVersion == "" || p.resourceVersion == "0") {
		result, err := s.store.List(ctx, req.res.Resource, prefix, req.res.New, storage.ListOptions{Predicate: match})
		if err != nil {
			return 0, nil, err
		}
		return result.Revision, result.Items, nil
	}
	rev, _ := strconv.ParseInt(p.resourceVersion, 10, 64)
	if initial {
		// Initial events at a given revision: a consistent list at it.
		result, err := s.store.List(ctx, req.res.Resource, prefix, req.res.New, storage.ListOptions{Revision: rev, Predicate: match})
		if err != nil {
			return 0, nil, err
		}
		return rev, result.Items, nil
	}
	if err := s.store.CheckRevision(ctx, prefix, rev); errors.Is(err, storage.ErrCompacted) {
		return 0, nil, apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d", rev))
	} else if err != nil {
		// etcd unreachable, say: not a reason to make the client relist.
		return 0, nil, err
	}
	return rev, nil, nil
}

// watchFromCache opens the watch on the watch cache when the cache can
// serve it, and returns nil, nil when etcd must: the cache is off or
// loading, or the watch starts before the cache's window (etcd keeps more
// history). A revision etcd has compacted is Gone either way. Initial events
// reflect at least the revision asked for: etcd's current one for "" (a
// consistent read), any for "0".
func (s *Server) watchFromCache(ctx context.Context, req *request, p *listParams, initial bool, match func(runtime.Object) bool, bookmarkEvery time.Duration) (*cacher.Watch, error) {
	c := s.cfg.Cache.For(req.res)
	if c == nil {
		return nil, nil
	}
	opts := cacher.WatchOptions{Namespace: req.namespace, Predicate: match, Initial: initial, BookmarkEvery: bookmarkEvery}
	var err error
	switch {
	case !initial && p.resourceVersion == "0":
		// Changes from now on: "0" asks for no particular freshness.
		opts.Revision, _ = c.Revision()
	default:
		if opts.Revision, err = s.minRevision(ctx, p.resourceVersion); err != nil {
			return nil, err
		}
	}
	if !initial && p.resourceVersion != "" && p.resourceVersion != "0" {
		// The cache may still hold changes etcd has compacted, but the
		// contract is etcd's: a compacted revision is Gone.
		// Any other error (etcd briefly unreachable) leaves the cache to
		// serve what it holds rather than sending every client to relist.
		if err := s.store.CheckRevision(ctx, req.res.Prefix(req.namespace), opts.Revision); errors.Is(err, storage.ErrCompacted) {
			return nil, apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d", opts.Revision))
		}
	}
	w, err := c.Watch(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	return w, nil
}

// bookmark is an object of the watched kind carrying only a revision.
func (s *Server) bookmark(req *request, rev int64, initialEnd bool) runtime.Object {
	obj := req.res.New()
	m := accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(rev, 10))
	if initialEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return obj
}

// errorStatus is the Status a watch stream ends with.
func (s *Server) errorStatus(err error) metav1.Status {
	var status metav1.Status
	var se apierrors.APIStatus
	if errors.Is(err, storage.ErrCompacted) {
		status = apierrors.NewResourceExpired("too old resource version").ErrStatus
	} else if errors.As(err, &se) {
		// A stored object the apiserver cannot decrypt, say.
		status = se.Status()
	} else {
		status = apierrors.NewInternalError(err).ErrStatus
	}
	status.Kind, status.APIVersion = "Status", "v1"
	return status
}
