// Package queue is the scheduler's queue of pods waiting for a node, with
// Kubernetes' three parts:
//
//   - active: pods to try now, highest spec.priority first, then oldest;
//   - backoff: pods that failed recently and wait out an exponential
//     backoff (InitialBackoff doubling per attempt up to MaxBackoff) before
//     they return to active;
//   - unschedulable: pods no node fits. They stay here until a cluster
//     event that could make them fit happens (a node added, a pod deleted,
//     a taint removed, … — only events that the plugins which rejected the
//     pod registered for), or until MaxInUnschedulable passes as a safety
//     net. So an unschedulable pod costs nothing while nothing changes.
//
// A pod that fails while an event arrived during its own scheduling cycle
// goes to backoff instead of unschedulable, so the event is not lost.
package queue

import (
	"container/heap"
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/utils/clock"

	"github.com/kubeish/kubeish/scheduler/framework"
)

// QueuedPodInfo is a pod in the queue with its scheduling history.
type QueuedPodInfo struct {
	*framework.PodInfo
	// Timestamp is when the pod last entered the queue.
	Timestamp time.Time
	// FirstEnqueued is when the pod first entered the queue (for the
	// end-to-end latency).
	FirstEnqueued time.Time
	// Attempts counts scheduling attempts (incremented by Pop).
	Attempts int
	// UnschedulablePlugins rejected the pod in its last attempt; empty
	// after an error (which always goes to backoff).
	UnschedulablePlugins map[string]struct{}
}

// Config configures a PriorityQueue. Zero values take Kubernetes'
// defaults.
type Config struct {
	Clock              clock.Clock
	InitialBackoff     time.Duration // 1s
	MaxBackoff         time.Duration // 10s
	MaxInUnschedulable time.Duration // 5m
	// FlushPeriod is how often backoff is checked for pods whose wait is
	// over (1s).
	FlushPeriod time.Duration
	// PluginEvents maps a filter plugin's name to the events that may
	// make a pod it rejected fit. A plugin not listed is helped by any
	// event.
	PluginEvents map[string]framework.ClusterEvent
}

// PriorityQueue is the scheduling queue. It is safe for concurrent use.
type PriorityQueue struct {
	cfg  Config
	mu   sync.Mutex
	cond *sync.Cond

	active        *podHeap
	backoff       *podHeap
	unschedulable map[string]*QueuedPodInfo

	schedulingCycle  int64
	moveRequestCycle int64
	closed           bool
}

// New returns an empty queue.
func New(cfg Config) *PriorityQueue {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = cfg.InitialBackoff
	}
	if cfg.MaxInUnschedulable <= 0 {
		cfg.MaxInUnschedulable = 5 * time.Minute
	}
	if cfg.FlushPeriod <= 0 {
		cfg.FlushPeriod = time.Second
	}
	q := &PriorityQueue{cfg: cfg, unschedulable: map[string]*QueuedPodInfo{}, moveRequestCycle: -1}
	q.cond = sync.NewCond(&q.mu)
	q.active = newHeap(activeLess)
	q.backoff = newHeap(func(a, b *QueuedPodInfo) bool {
		return q.backoffExpiry(a).Before(q.backoffExpiry(b))
	})
	return q
}

// activeLess orders by priority (higher first), then age (older first).
func activeLess(a, b *QueuedPodInfo) bool {
	pa, pb := corev1helpers.PodPriority(a.Pod), corev1helpers.PodPriority(b.Pod)
	if pa != pb {
		return pa > pb
	}
	ca, cb := a.Pod.CreationTimestamp.Time, b.Pod.CreationTimestamp.Time
	if !ca.Equal(cb) {
		return ca.Before(cb)
	}
	return a.Timestamp.Before(b.Timestamp)
}

func (q *PriorityQueue) backoffDuration(qp *QueuedPodInfo) time.Duration {
	d := q.cfg.InitialBackoff
	for i := 1; i < qp.Attempts; i++ {
		d *= 2
		if d >= q.cfg.MaxBackoff {
			return q.cfg.MaxBackoff
		}
	}
	return d
}

func (q *PriorityQueue) backoffExpiry(qp *QueuedPodInfo) time.Time {
	return qp.Timestamp.Add(q.backoffDuration(qp))
}

func (q *PriorityQueue) isBackingOff(qp *QueuedPodInfo) bool {
	return q.backoffExpiry(qp).After(q.cfg.Clock.Now())
}

func podKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

// find returns where a pod is, holding mu.
func (q *PriorityQueue) find(key string) *QueuedPodInfo {
	if qp := q.active.get(key); qp != nil {
		return qp
	}
	if qp := q.backoff.get(key); qp != nil {
		return qp
	}
	return q.unschedulable[key]
}

// Add enqueues a new pending pod (or updates it if it is queued).
func (q *PriorityQueue) Add(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old := q.find(podKey(pod)); old != nil {
		q.updateLocked(old, pod)
		return
	}
	now := q.cfg.Clock.Now()
	q.active.push(&QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), Timestamp: now, FirstEnqueued: now})
	q.cond.Broadcast()
}

// Update records a change of a pending pod. A pod waiting as
// unschedulable whose spec or metadata changed (a new toleration, a
// relaxed selector) is tried again; a status-only change is not a reason
// to. A pod not in the queue (e.g. it was being scheduled) is added.
func (q *PriorityQueue) Update(_, pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if old := q.find(podKey(pod)); old != nil {
		q.updateLocked(old, pod)
		return
	}
	now := q.cfg.Clock.Now()
	q.active.push(&QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), Timestamp: now, FirstEnqueued: now})
	q.cond.Broadcast()
}

func (q *PriorityQueue) updateLocked(old *QueuedPodInfo, pod *v1.Pod) {
	key := podKey(pod)
	changed := podChanged(old.Pod, pod)
	nqp := *old
	nqp.PodInfo = framework.NewPodInfo(pod)
	switch {
	case q.active.get(key) != nil:
		q.active.update(&nqp)
	case q.backoff.get(key) != nil:
		q.backoff.update(&nqp)
	default:
		if !changed {
			q.unschedulable[key] = &nqp
			return
		}
		delete(q.unschedulable, key)
		q.requeueLocked(&nqp)
	}
}

// podChanged ignores what the scheduler itself and the node agent write
// (status, resourceVersion, managedFields), as Kubernetes' isPodUpdated.
func podChanged(a, b *v1.Pod) bool {
	if !apiequality.Semantic.DeepEqual(a.Spec, b.Spec) {
		return true
	}
	am, bm := a.ObjectMeta, b.ObjectMeta
	am.ResourceVersion, bm.ResourceVersion = "", ""
	am.ManagedFields, bm.ManagedFields = nil, nil
	am.Generation, bm.Generation = 0, 0
	return !apiequality.Semantic.DeepEqual(am, bm)
}

// requeueLocked puts a pod into backoff if it is still waiting out its
// backoff, else into active.
func (q *PriorityQueue) requeueLocked(qp *QueuedPodInfo) {
	if q.isBackingOff(qp) {
		q.backoff.push(qp)
		return
	}
	q.active.push(qp)
	q.cond.Broadcast()
}

// Delete removes a pod from the queue (it was deleted or got bound).
func (q *PriorityQueue) Delete(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := podKey(pod)
	q.active.remove(key)
	q.backoff.remove(key)
	delete(q.unschedulable, key)
}

// Pop blocks until a pod is active and returns it, or returns nil once the
// queue is closed. Each Pop starts a new scheduling cycle.
func (q *PriorityQueue) Pop() *QueuedPodInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	qp := heap.Pop(q.active).(*QueuedPodInfo)
	qp.Attempts++
	q.schedulingCycle++
	return qp
}

// SchedulingCycle returns the number of the current cycle (the last Pop).
func (q *PriorityQueue) SchedulingCycle() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.schedulingCycle
}

// AddUnschedulableIfNotPresent takes back a pod that failed in cycle
// podCycle. With UnschedulablePlugins set it waits in unschedulable for a
// helpful event, unless one arrived since podCycle began (then it goes to
// backoff); after an error (no plugins) it goes to backoff. A pod that
// was re-added meanwhile (by an update) is left where it is.
func (q *PriorityQueue) AddUnschedulableIfNotPresent(qp *QueuedPodInfo, podCycle int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	key := qp.Key
	if q.find(key) != nil {
		return
	}
	qp.Timestamp = q.cfg.Clock.Now()
	if len(qp.UnschedulablePlugins) == 0 || q.moveRequestCycle >= podCycle {
		q.backoff.push(qp)
		return
	}
	q.unschedulable[key] = qp
}

// MoveAllToActiveOrBackoffQueue moves the unschedulable pods that event
// may help to active (or backoff, if they are still backing off).
func (q *PriorityQueue) MoveAllToActiveOrBackoffQueue(event framework.ClusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for key, qp := range q.unschedulable {
		if q.helps(qp, event) {
			delete(q.unschedulable, key)
			q.requeueLocked(qp)
		}
	}
	q.moveRequestCycle = q.schedulingCycle
}

func (q *PriorityQueue) helps(qp *QueuedPodInfo, event framework.ClusterEvent) bool {
	if event == framework.UnschedulableTimeout || len(qp.UnschedulablePlugins) == 0 {
		return true
	}
	for p := range qp.UnschedulablePlugins {
		evs, ok := q.cfg.PluginEvents[p]
		if !ok || evs&event != 0 {
			return true
		}
	}
	return false
}

// FlushBackoffCompleted moves pods whose backoff is over to active.
func (q *PriorityQueue) FlushBackoffCompleted() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Clock.Now()
	moved := false
	for q.backoff.Len() > 0 {
		qp := q.backoff.peek()
		if q.backoffExpiry(qp).After(now) {
			break
		}
		heap.Pop(q.backoff)
		q.active.push(qp)
		moved = true
	}
	if moved {
		q.cond.Broadcast()
	}
}

// FlushUnschedulableLeftover moves pods that waited longer than
// MaxInUnschedulable back, whatever happened meanwhile.
func (q *PriorityQueue) FlushUnschedulableLeftover() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Clock.Now()
	for key, qp := range q.unschedulable {
		if now.Sub(qp.Timestamp) > q.cfg.MaxInUnschedulable {
			delete(q.unschedulable, key)
			q.requeueLocked(qp)
		}
	}
}

// Run flushes backoff every FlushPeriod and leftovers every 30s until ctx
// ends, then closes the queue (Pop returns nil).
func (q *PriorityQueue) Run(ctx context.Context) {
	b := time.NewTicker(q.cfg.FlushPeriod)
	u := time.NewTicker(30 * time.Second)
	defer b.Stop()
	defer u.Stop()
	defer q.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.C:
			q.FlushBackoffCompleted()
		case <-u.C:
			q.FlushUnschedulableLeftover()
		}
	}
}

// Close wakes every Pop, which then returns nil.
func (q *PriorityQueue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Lens returns the sizes of the three sub-queues.
func (q *PriorityQueue) Lens() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable)
}

// podHeap is a heap of pods with lookup and removal by key.
type podHeap struct {
	items []*QueuedPodInfo
	index map[string]int
	less  func(a, b *QueuedPodInfo) bool
}

func newHeap(less func(a, b *QueuedPodInfo) bool) *podHeap {
	return &podHeap{index: map[string]int{}, less: less}
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].Key] = i
	h.index[h.items[j].Key] = j
}
func (h *podHeap) Push(x any) {
	qp := x.(*QueuedPodInfo)
	h.index[qp.Key] = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	last := len(h.items) - 1
	qp := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	delete(h.index, qp.Key)
	return qp
}

func (h *podHeap) push(qp *QueuedPodInfo) { heap.Push(h, qp) }
func (h *podHeap) peek() *QueuedPodInfo   { return h.items[0] }

func (h *podHeap) get(key string) *QueuedPodInfo {
	if i, ok := h.index[key]; ok {
		return h.items[i]
	}
	return nil
}

func (h *podHeap) update(qp *QueuedPodInfo) {
	i := h.index[qp.Key]
	h.items[i] = qp
	heap.Fix(h, i)
}

func (h *podHeap) remove(key string) {
	if i, ok := h.index[key]; ok {
		heap.Remove(h, i)
	}
}
