// Package loop is the work-queue machinery every reconcile loop of the
// controller shares: informer handlers enqueue namespace/name keys, workers
// take keys off a rate-limited queue and call the loop's reconcile function,
// and the outcome decides the requeue: an error backs off per item
// (exponential, under an overall rate limit), a known wait requeues after
// it, a permanent error is dropped, success forgets the item.
package loop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// ReconcileFunc converges the object named by key ("namespace/name" or
// "name"). A positive requeueAfter asks to be called again after that long
// even on success (a known wait: minReadySeconds, a progress deadline).
type ReconcileFunc func(ctx context.Context, key string) (requeueAfter time.Duration, err error)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that the loop logs it and does not retry the item
// (an invalid spec); the next change to the object enqueues it again.
func Permanent(err error) error { return permanentError{err} }

// Metrics are the per-loop reconcile metrics, labelled by controller name.
type Metrics struct {
	total    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers kubeish_controller_reconcile_total{controller,result},
// kubeish_controller_reconcile_errors_total{controller} and
// kubeish_controller_reconcile_duration_seconds{controller} on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubeish", Subsystem: "controller", Name: "reconcile_total",
			Help: "Reconciles per controller, by result (success, requeue_after, error, permanent_error).",
		}, []string{"controller", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubeish", Subsystem: "controller", Name: "reconcile_errors_total",
			Help: "Reconciles per controller that returned an error.",
		}, []string{"controller"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kubeish", Subsystem: "controller", Name: "reconcile_duration_seconds",
			Help:    "Time one reconcile takes, per controller.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"controller"}),
	}
	if reg != nil {
		reg.MustRegister(m.total, m.errors, m.duration)
	}
	return m
}

// Loop is one named reconcile loop: a queue and its workers.
type Loop struct {
	name      string
	queue     workqueue.TypedRateLimitingInterface[string]
	reconcile ReconcileFunc
	metrics   *Metrics
	log       *zap.Logger

	mu         sync.Mutex
	busy       time.Duration // total time spent in reconcile, for benchmarks
	reconciles int64
}

// New returns a loop named name (the metrics' controller label and the
// queue's name) that calls fn for every key.
func New(name string, fn ReconcileFunc, m *Metrics, log *zap.Logger) *Loop {
	if m == nil {
		m = NewMetrics(nil)
	}
	rl := workqueue.DefaultTypedControllerRateLimiter[string]()
	return &Loop{
		name:      name,
		queue:     workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		reconcile: fn,
		metrics:   m,
		log:       log.Named(name),
	}
}

// Name is the loop's name.
func (l *Loop) Name() string { return l.name }

// Add enqueues key.
func (l *Loop) Add(key string) { l.queue.Add(key) }

// AddAfter enqueues key after d.
func (l *Loop) AddAfter(key string, d time.Duration) { l.queue.AddAfter(key, d) }

// Enqueue enqueues the key of an informer object (also a tombstone).
func (l *Loop) Enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		l.log.Warn("cannot key object", zap.Error(err))
		return
	}
	l.queue.Add(key)
}

// ObjectOf returns the object an informer event carries as a T, first
// unwrapping the tombstone (cache.DeletedFinalStateUnknown) a delete the
// watch missed arrives as; ok is false when it is not a T.
func ObjectOf[T any](obj any) (T, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	t, ok := obj.(T)
	return t, ok
}

// Len is the queue's current depth.
func (l *Loop) Len() int { return l.queue.Len() }

// Stats returns how many reconciles ran and the time they took in total.
func (l *Loop) Stats() (n int64, busy time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reconciles, l.busy
}

// Run waits for the caches, starts workers and blocks until ctx ends; it
// then shuts the queue down and waits for the workers to finish.
func (l *Loop) Run(ctx context.Context, workers int, synced ...cache.InformerSynced) error {
	defer l.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", l.name, ctx.Err())
	}
	l.log.Info("started", zap.Int("workers", workers))
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() { wait.UntilWithContext(ctx, l.worker, time.Second) })
	}
	<-ctx.Done()
	l.queue.ShutDown()
	wg.Wait()
	return nil
}

func (l *Loop) worker(ctx context.Context) {
	for l.next(ctx) {
	}
}

func (l *Loop) next(ctx context.Context) bool {
	key, quit := l.queue.Get()
	if quit {
		return false
	}
	defer l.queue.Done(key)
	start := time.Now()
	after, err := l.reconcile(ctx, key)
	took := time.Since(start)
	l.metrics.duration.WithLabelValues(l.name).Observe(took.Seconds())
	l.mu.Lock()
	l.busy += took
	l.reconciles++
	l.mu.Unlock()
	var perm permanentError
	switch {
	case err == nil && after > 0:
		l.metrics.total.WithLabelValues(l.name, "requeue_after").Inc()
		l.queue.Forget(key)
		l.queue.AddAfter(key, after)
	case err == nil:
		l.metrics.total.WithLabelValues(l.name, "success").Inc()
		l.queue.Forget(key)
	case errors.As(err, &perm):
		l.metrics.total.WithLabelValues(l.name, "permanent_error").Inc()
		l.metrics.errors.WithLabelValues(l.name).Inc()
		l.log.Error("reconcile failed; not retrying until the object changes", zap.String("key", key), zap.Error(err))
		l.queue.Forget(key)
	case ctx.Err() != nil:
		// Shutting down: the next leader picks the item up.
	default:
		l.metrics.total.WithLabelValues(l.name, "error").Inc()
		l.metrics.errors.WithLabelValues(l.name).Inc()
		// A conflict only means the cache was behind a write: routine.
		lvl := zap.InfoLevel
		if apierrors.IsConflict(err) {
			lvl = zap.DebugLevel
		}
		l.log.Log(lvl, "reconcile failed; retrying with backoff", zap.String("key", key),
			zap.Int("retries", l.queue.NumRequeues(key)), zap.Error(err))
		l.queue.AddRateLimited(key)
	}
	return true
}

// Handler returns informer event handlers that enqueue the object's own key
// on add, update and delete.
func (l *Loop) Handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    l.Enqueue,
		UpdateFunc: func(_, obj any) { l.Enqueue(obj) },
		DeleteFunc: l.Enqueue,
	}
}
